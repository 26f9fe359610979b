// `mayu`: the server. The only module that reads flags and the environment.
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { defaultGateway, DetectError, detectedConfigYaml, detectNetwork, nameserversFrom } from '../config/detect.ts';
import { ConfigError } from '../config/load.ts';
import { PROJECT_ROOT, startServer } from '../server.ts';
import { compactRepo } from '../store/git-compaction.ts';
import { GitObjectReader } from '../store/git-object-reader.ts';
import { resolveHead } from '../store/git-refs.ts';

// libuv's pool (4 threads by default) runs every fsync, file write and rename of the store and
// the working-tree mirror; during a storm 4 fsyncs in flight made the rest queue. Set before the
// pool is first used (it starts lazily), unless the operator chose a size.
process.env.UV_THREADPOOL_SIZE ??= '16';

const version = (JSON.parse(readFileSync(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const inRoot = (p: string) => path.join(PROJECT_ROOT, p);
const resolved = (p: string | undefined) => (p === undefined ? undefined : path.resolve(p));

await yargs(hideBin(process.argv))
  .scriptName('mayu')
  .version(version)
  .strict()
  .command(
    ['serve', '$0'],
    'serve PXE boot scripts, configs and the admin API (flags named as in mayu 0.11)',
    (y) => y
      .option('config', { type: 'string', default: inRoot('config.yaml'), describe: 'mayu 0.11 config.yaml' })
      .option('profiles-dir', { type: 'string', default: inRoot('profiles'), describe: 'extra profiles, one per *.yaml (after config.yaml\'s, by `order` then file name)' })
      .option('cluster-directory', { type: 'string', default: inRoot('clusters'), describe: 'cluster git repo (created on first start)' })
      .option('templates-dir', { type: 'string', default: inRoot('templates') })
      .option('template-snippets', { type: 'string', default: inRoot('template_snippets') })
      .option('images-cache-dir', { type: 'string', default: inRoot('images'), describe: 'installer kernel/initrd and <version>/install_image.bin.bz2' })
      .option('tftproot', { type: 'string', default: inRoot('tftproot') })
      .option('dnsmasq', { type: 'string', default: 'dnsmasq', describe: 'dnsmasq binary mayu runs for DHCP + TFTP when network.pxe is true (--no-dnsmasq: run none, the site has its own DHCP)' })
      .option('run-dir', { type: 'string', default: inRoot('run'), describe: 'folder for dnsmasq\'s generated conf, hostsfile, lease file and pid file' })
      .option('http-port', { type: 'number', default: 4080 })
      .option('http-bind-address', { type: 'string', default: '0.0.0.0' })
      .option('git', { type: 'boolean', default: true, describe: 'keep the cluster directory as a git repo (--no-git: plain files, no history)' })
      .option('use-ignition', { type: 'boolean', describe: 'serve Ignition instead of cloud-config (default: config use_ignition)' })
      .option('debug', { type: 'boolean', default: false, describe: 'debug logging' })
      .option('events-heartbeat-ms', { type: 'number', default: 15_000, describe: 'interval of the heartbeat comments on /admin/events streams (keeps proxies from closing them)' })
      .option('admin-token-file', { type: 'string', describe: 'file holding the admin API bearer token (or env MAYU_ADMIN_TOKEN, or config security.admin_token_file); none: the admin API is open, as in 0.11' })
      .option('report-key-file', { type: 'string', describe: 'secret the per-host report tokens derive from, created 0600 on first start (default run/report-key; keep it out of the cluster repo)' })
      .option('insecure-reports', { type: 'boolean', describe: 'accept set_installed / boot_complete without a report token (machines installed by 0.11)' })
      .option('tls-port', { type: 'number', describe: 'serve the admin API (and the machine routes) over TLS on this port; the plain port then keeps machine routes and reports only' })
      .option('tls-cert-file', { type: 'string', describe: 'PEM certificate (chain) of the TLS port' })
      .option('tls-key-file', { type: 'string', describe: 'PEM private key of the TLS port' })
      .option('tls-ca-file', { type: 'string', describe: 'PEM CA handed to templates as mayu_ca_pem (default: the certificate itself when self-signed)' })
      .option('use-internal-etcd-discovery', { type: 'boolean', default: true, describe: 'serve the etcd discovery service at /etcd (false: name --etcd-discovery in the templates)' })
      .option('etcd-endpoint', { type: 'string', describe: 'proxy /etcd to this etcd\'s v2 API (host:port as in 0.11, or a URL); default: mayu keeps the discovery state itself' })
      .option('etcd-quorum-size', { type: 'number', default: 3, describe: 'size of the default discovery token and of PUT /etcd/new without size' })
      .option('etcd-discovery', { type: 'string', describe: 'external etcd discovery base URL (e.g. https://discovery.etcd.io), with --use-internal-etcd-discovery=false' }),
    async (argv) => {
      // Readable lines for a person at a terminal; JSON lines for everything else (journald, files, tests).
      // Loaded only for a terminal: a service's JSON logs need none of it (memory at start-up).
      const pretty = process.stdout.isTTY ? (await import('pino-pretty')).default({ sync: true, colorize: !process.env['NO_COLOR'] }) : undefined;
      const logger = pino({ level: argv.debug ? 'debug' : 'info', base: { name: 'mayu' } }, pretty ?? process.stdout);
      try {
        const server = await startServer({
          configFile: path.resolve(argv.config),
          profilesDir: path.resolve(argv['profiles-dir']),
          clusterDir: path.resolve(argv['cluster-directory']),
          templatesDir: path.resolve(argv['templates-dir']),
          snippetsDir: path.resolve(argv['template-snippets']),
          imagesDir: path.resolve(argv['images-cache-dir']),
          tftpRoot: path.resolve(argv.tftproot),
          // yargs turns --no-dnsmasq into false even for a string option.
          dnsmasq: (argv.dnsmasq as string | false) === false ? undefined : { binary: argv.dnsmasq, runDir: path.resolve(argv['run-dir']) },
          httpPort: argv['http-port'],
          httpBindAddress: argv['http-bind-address'],
          useGit: argv.git,
          useIgnition: argv['use-ignition'],
          eventHeartbeatMs: argv['events-heartbeat-ms'],
          etcdDiscovery: {
            internal: argv['use-internal-etcd-discovery'],
            endpoint: argv['etcd-endpoint'],
            quorumSize: argv['etcd-quorum-size'],
            discoveryUrl: argv['etcd-discovery'],
          },
          version,
          logger,
          security: {
            adminToken: process.env['MAYU_ADMIN_TOKEN'],
            adminTokenFile: resolved(argv['admin-token-file']),
            reportKeyFile: resolved(argv['report-key-file']),
            insecureReports: argv['insecure-reports'],
            tlsPort: argv['tls-port'],
            tlsCertFile: resolved(argv['tls-cert-file']),
            tlsKeyFile: resolved(argv['tls-key-file']),
            tlsCaFile: resolved(argv['tls-ca-file']),
          },
        });
        const stop = async (signal: string) => {
          logger.info({ signal }, 'stopping');
          await server.close();
          process.exit(0);
        };
        process.once('SIGINT', () => void stop('SIGINT'));
        process.once('SIGTERM', () => void stop('SIGTERM'));
      } catch (err) {
        // Fail fast with the reason: a broken config or repo must not half-start.
        const message = err instanceof ConfigError ? err.message : `${(err as Error).message}`;
        logger.fatal({ err }, 'mayu cannot start');
        process.stderr.write(`mayu: cannot start:\n${message}\n`);
        process.exit(1);
      }
    },
  )
  .command(
    'compact',
    'merge the cluster repo\'s packs and loose objects into one pack now (mayu also merges packs by itself as they pile up); safe while mayu runs',
    (y) => y.option('cluster-directory', { type: 'string', default: inRoot('clusters') }),
    async (argv) => {
      const gitdir = path.join(path.resolve(argv['cluster-directory']), '.git');
      const head = await resolveHead(gitdir).catch(() => undefined);
      if (!head) {
        process.stderr.write(`mayu compact: ${gitdir} is not a mayu cluster repo (no HEAD commit)\n`);
        process.exit(1);
      }
      const reader = new GitObjectReader(gitdir);
      const result = await compactRepo(reader, head, { all: true });
      await reader.close();
      process.stdout.write(result.pack
        ? `${result.objects} objects from ${result.mergedPacks} packs and ${result.looseObjects} loose files packed into ${result.pack} (${result.packBytes} bytes)\n`
        : 'nothing to compact: already one pack\n');
    },
  )
  .command(
    'config',
    'config.yaml helpers',
    (y) => y
      .command(
        'detect',
        'print a config.yaml for this machine: network from the interface\'s address, ranges inside its subnet, its default gateway',
        (yy) => yy.option('interface', { type: 'string', describe: 'the NIC on the provisioning network (default: the first non-loopback one with IPv4)' }),
        (argv) => {
          // os.networkInterfaces() (<1 ms) rather than systeminformation (~55 ms, and a dependency):
          // it has every field this needs; the gateway and DNS come from /proc and resolv.conf.
          const readOrEmpty = (file: string) => {
            try {
              return readFileSync(file, 'utf8');
            } catch {
              return '';
            }
          };
          try {
            const ifaces = networkInterfaces();
            const name = argv.interface ?? undefined;
            const chosen = name ?? Object.keys(ifaces).find((n) => (ifaces[n] ?? []).some((a) => a.family === 'IPv4' && !a.internal)) ?? '';
            const detected = detectNetwork(ifaces, name, {
              gateway: defaultGateway(readOrEmpty('/proc/net/route'), chosen),
              nameservers: nameserversFrom(readOrEmpty('/etc/resolv.conf')),
            });
            process.stdout.write(detectedConfigYaml(detected));
          } catch (err) {
            if (!(err instanceof DetectError)) throw err;
            process.stderr.write(`mayu config detect: ${err.message}\n`);
            process.exitCode = 1;
          }
        },
      )
      .demandCommand(1, 'mayu config: name a subcommand (detect)'),
  )
  .parseAsync();

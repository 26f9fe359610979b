// `mayu`: the server. The only module that reads flags and the environment.
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { defaultGateway, DetectError, detectedConfigYaml, detectNetwork, nameserversFrom } from '../config/detect.ts';
import { ConfigError, loadConfig } from '../config/load.ts';
import { connectEtcd } from '../store/etcd/connect.ts';
import { EtcdKeys } from '../store/etcd/keys.ts';
import { migrateToEtcd } from '../store/etcd/migrate.ts';
import { migrateFromEtcd } from '../store/etcd/migrate-back.ts';
import { RenderError } from '../render/renderer.ts';
import { PROJECT_ROOT, showTemplates, startServer } from '../server.ts';
import { compactRepo } from '../git/compaction.ts';
import { GitObjectReader } from '../git/object-reader.ts';
import { resolveHead } from '../git/refs.ts';
import { localZone } from './local-zone.ts';
import { givenIgnoredFlags, IGNORED_0_11_FLAGS, logLevelFor, snippetsDirFor } from './mayu-0.11-flags.ts';

// libuv's pool (4 threads by default) runs every fsync, file write and rename of the store and
// the working-tree mirror; during a storm 4 fsyncs in flight made the rest queue. Set before the
// pool is first used (it starts lazily), unless the operator chose a size.
process.env.UV_THREADPOOL_SIZE ??= '16';

const version = (JSON.parse(readFileSync(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const inRoot = (p: string) => path.join(PROJECT_ROOT, p);
const resolved = (p: string | undefined) => (p === undefined ? undefined : path.resolve(p));
/** Exit code of a usage error (unknown flag, bad value), found before anything starts. */
const USAGE_EXIT_CODE = 2;
class UsageError extends Error {}
const NON_EMPTY_FLAGS = [
  'config', 'profiles-dir', 'cluster-directory', 'templates-dir', 'template-snippets', 'images-cache-dir', 'tftproot', 'dnsmasq', 'run-dir',
  'http-bind-address', 'first-stage-script', 'last-stage-cloudconfig', 'ignition-config', 'dnsmasq-template',
] as const;

await yargs(hideBin(process.argv))
  .scriptName('mayu')
  // One name per flag, as given: usage errors then name it once ("Unknown argument: bogus-flag").
  .parserConfiguration({ 'camel-case-expansion': false })
  // 0.11's text (its printVersion); 0.11.1 itself never reached it and started the server.
  .version(false)
  .option('version', { type: 'boolean', describe: 'print the version and exit' })
  .middleware((argv) => {
    if (!argv.version) return;
    process.stdout.write(`mayu version ${version}\n`);
    process.exit(0);
  }, true)
  .strict()
  .fail((msg, err, y) => {
    if (err && !(err instanceof UsageError) && err.name !== 'YError') throw err; // a handler's own error, not a usage error
    process.stderr.write(`${y.help().toString()}\n\n${msg}\n`);
    process.exit(USAGE_EXIT_CODE);
  })
  .command(
    ['serve', '$0'],
    'serve PXE boot scripts, configs and the admin API (flags named as in mayu 0.11)',
    (y) => y
      .option('config', { type: 'string', default: inRoot('config.yaml'), describe: 'mayu 0.11 config.yaml' })
      .option('profiles-dir', { type: 'string', default: inRoot('profiles'), describe: 'extra profiles, one per *.yaml (after config.yaml\'s, by `order` then file name)' })
      .option('cluster-directory', { type: 'string', default: inRoot('clusters'), describe: 'cluster git repo (created on first start)' })
      .option('templates-dir', { type: 'string', default: inRoot('templates') })
      .option('template-snippets', { type: 'string', default: inRoot('template_snippets'), describe: 'folder with cloudconfig/ and ignition/ (0.11\'s template_snippets/cloudconfig: its parent is taken)' })
      .option('first-stage-script', { type: 'string', describe: 'template file instead of <templates-dir>/first_stage_script.sh (0.11 flag)' })
      .option('last-stage-cloudconfig', { type: 'string', describe: 'template file instead of <templates-dir>/last_stage_cloudconfig.yaml (0.11 flag)' })
      .option('ignition-config', { type: 'string', describe: 'template file instead of <templates-dir>/last_stage_ignition.json (0.11 flag; our mustache JSON, not 0.11\'s YAML)' })
      .option('dnsmasq-template', { type: 'string', describe: 'template file instead of <templates-dir>/dnsmasq_template.conf (0.11 flag)' })
      .option('show-templates', { type: 'boolean', default: false, describe: 'print the final config rendered for an empty host, checked, and exit (0.11 flag)' })
      .option('images-cache-dir', { type: 'string', default: inRoot('images'), describe: 'installer kernel/initrd and <version>/install_image.bin.bz2' })
      .option('tftproot', { type: 'string', default: inRoot('tftproot') })
      .option('dnsmasq', { type: 'string', default: 'dnsmasq', describe: 'dnsmasq binary mayu runs for DHCP + TFTP when network.pxe is true (--no-dnsmasq: run none, the site has its own DHCP)' })
      .option('run-dir', { type: 'string', default: inRoot('run'), describe: 'folder for dnsmasq\'s generated conf, hostsfile, lease file and pid file' })
      .option('http-port', { type: 'number', default: 4080 })
      .option('http-bind-address', { type: 'string', default: '0.0.0.0' })
      .option('git', { type: 'boolean', default: true, describe: 'keep the cluster directory as a git repo (--no-git: plain files, no history)' })
      .option('store', { choices: ['git', 'etcd'] as const, default: 'git' as const, describe: 'where hosts live: git (the cluster directory, one mayu) or etcd (config `etcd:`, shared by replicas; the cluster directory is then their shared audit repo)' })
      .option('etcd-store-endpoints', { type: 'string', describe: 'comma-separated etcd client URLs for --store etcd (default: config etcd.endpoints)' })
      .option('replica-id', { type: 'string', describe: 'this replica\'s name in the history writer election (--store etcd; default <hostname>:<pid>)' })
      .option('use-ignition', { type: 'boolean', describe: 'serve Ignition instead of cloud-config (default: config use_ignition)' })
      .option('debug', { alias: 'd', type: 'boolean', default: false, describe: 'debug logging' })
      .option('v', { type: 'number', describe: '0.11\'s glog verbosity: 0-2 info, 3 or more debug' })
      .option('tls', { type: 'boolean', describe: '0.11\'s --no-tls is accepted: mayu serves plain HTTP unless --tls-port is given' })
      .option('use-internal-etcd-discovery', { type: 'boolean', default: true, describe: 'serve the etcd discovery service at /etcd/ (0.11 flag); false: templates name --etcd-discovery' })
      .option('etcd-endpoint', { type: 'string', describe: 'host:port of the etcd the discovery service proxies to (0.11 flag)' })
      .option('etcd-quorum-size', { type: 'number', default: 3, describe: 'size of a new discovery token\'s cluster (0.11 flag)' })
      .option('etcd-discovery', { type: 'string', describe: 'external etcd discovery base URL, e.g. https://discovery.etcd.io (0.11 flag)' })
      .options(IGNORED_0_11_FLAGS)
      // A value flag without its value is a usage error (as in 0.11), not its default.
      .requiresArg([...NON_EMPTY_FLAGS, 'http-port', 'v', 'etcd-endpoint', 'etcd-quorum-size', 'etcd-discovery', 'events-heartbeat-ms', 'outside-check-ms',
        'admin-token-file', 'report-key-file', 'tls-port', 'tls-cert-file', 'tls-key-file', 'tls-ca-file', 'log_dir', 'stderrthreshold', 'vmodule',
        'log_backtrace_at', 'yochu-path', 'static-html-path'])
      .group(Object.keys(IGNORED_0_11_FLAGS), 'Accepted for mayu 0.11 and ignored:')
      .check((argv) => {
        // yargs turns `--config` without a value into '', which path.resolve makes the working directory.
        const emptyPath = NON_EMPTY_FLAGS.find((name) => argv[name] === '');
        if (emptyPath) throw new UsageError(`--${emptyPath}: expected a value`);
        if (argv.v !== undefined && !(Number.isInteger(argv.v) && argv.v >= 0)) throw new UsageError('-v: expected a verbosity level like 0 or 12');
        if (!(Number.isInteger(argv['etcd-quorum-size']) && argv['etcd-quorum-size'] >= 1)) throw new UsageError('--etcd-quorum-size: expected a whole number of 1 or more');
        if (!(Number.isInteger(argv['http-port']) && argv['http-port'] >= 0 && argv['http-port'] <= 65535)) throw new UsageError('--http-port: expected a port number 0-65535');
        return true;
      })
      .option('events-heartbeat-ms', { type: 'number', default: 15_000, describe: 'interval of the heartbeat comments on /admin/events streams (keeps proxies from closing them)' })
      .option('outside-check-ms', { type: 'number', default: 1000, describe: "how often the cluster repo is checked for operators' commits and hand-edited conf.json (0: only before a host's changes and when git is written)" })
      .option('admin-token-file', { type: 'string', describe: 'file holding the admin API bearer token (or env MAYU_ADMIN_TOKEN, or config security.admin_token_file); none: the admin API is open, as in 0.11' })
      .option('report-key-file', { type: 'string', describe: 'secret the per-host report tokens derive from, created 0600 on first start (default run/report-key; keep it out of the cluster repo)' })
      .option('insecure-reports', { type: 'boolean', describe: 'accept set_installed / boot_complete without a report token (machines installed by 0.11)' })
      .option('tls-port', { type: 'number', describe: 'serve the admin API (and the machine routes) over TLS on this port; the plain port then keeps machine routes and reports only' })
      .option('tls-cert-file', { type: 'string', describe: 'PEM certificate (chain) of the TLS port' })
      .option('tls-key-file', { type: 'string', describe: 'PEM private key of the TLS port' })
      .option('tls-ca-file', { type: 'string', describe: 'PEM CA handed to templates as mayu_ca_pem (default: the certificate itself when self-signed)' }),
    async (argv) => {
      // Readable lines for a person at a terminal; JSON lines for everything else (journald, files, tests).
      // Loaded only for a terminal: a service's JSON logs need none of it (memory at start-up).
      const pretty = process.stdout.isTTY ? (await import('pino-pretty')).default({ sync: true, colorize: !process.env['NO_COLOR'] }) : undefined;
      const logger = pino({ level: logLevelFor(argv.v, argv.debug), base: { name: 'mayu' } }, pretty ?? process.stdout);
      const templates = {
        templatesDir: path.resolve(argv['templates-dir']),
        snippetsDir: snippetsDirFor(argv['template-snippets']),
        templateFiles: {
          firstStageScript: resolved(argv['first-stage-script']),
          cloudConfig: resolved(argv['last-stage-cloudconfig']),
          ignition: resolved(argv['ignition-config']),
          dnsmasqConf: resolved(argv['dnsmasq-template']),
        },
      };
      const etcdDiscovery = {
        internal: argv['use-internal-etcd-discovery'],
        endpoint: argv['etcd-endpoint'],
        quorumSize: argv['etcd-quorum-size'],
        discoveryUrl: argv['etcd-discovery'],
      };
      if (argv['show-templates']) {
        try {
          process.stdout.write(await showTemplates({
            ...templates,
            configFile: path.resolve(argv.config),
            profilesDir: path.resolve(argv['profiles-dir']),
            httpPort: argv['http-port'],
            useIgnition: argv['use-ignition'],
            version,
          }));
          process.exit(0);
        } catch (err) {
          if (!(err instanceof ConfigError || err instanceof RenderError)) throw err;
          process.stderr.write(`mayu: --show-templates: ${err.message}\n`);
          process.exit(1);
        }
      }
      // After --show-templates: its stdout is the config alone.
      const ignored = givenIgnoredFlags(argv);
      if (ignored.length) logger.warn({ flags: ignored }, `mayu 0.11 flags ignored (no meaning here): ${ignored.join(' ')}`);
      logger.debug({ logLevel: logger.level, templates, etcdDiscovery }, 'command line read');
      try {
        const server = await startServer({
          ...templates,
          configFile: path.resolve(argv.config),
          profilesDir: path.resolve(argv['profiles-dir']),
          clusterDir: path.resolve(argv['cluster-directory']),
          imagesDir: path.resolve(argv['images-cache-dir']),
          tftpRoot: path.resolve(argv.tftproot),
          // yargs turns --no-dnsmasq into false even for a string option.
          dnsmasq: (argv.dnsmasq as string | false) === false ? undefined : { binary: argv.dnsmasq, runDir: path.resolve(argv['run-dir']) },
          httpPort: argv['http-port'],
          httpBindAddress: argv['http-bind-address'],
          useGit: argv.git,
          etcdStore: argv.store === 'etcd'
            ? { endpoints: argv['etcd-store-endpoints']?.split(',').map((e) => e.trim()).filter(Boolean), replicaId: argv['replica-id'] }
            : undefined,
          useIgnition: argv['use-ignition'],
          eventHeartbeatMs: argv['events-heartbeat-ms'],
          outsideCheckMs: argv['outside-check-ms'],
          etcdDiscovery,
          version,
          // TZ as Go reads it: LastBoot and commits in the server's local time, as 0.11 wrote them.
          zone: localZone(process.env['TZ']),
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
    'migrate',
    'move a single-node cluster directory\'s hosts into etcd (config `etcd:`) for replicas (--store etcd); the repo stays and becomes their audit history, continued from where it is. --to git: back, from etcd into the cluster directory the replicas\' history writer kept (every replica stopped)',
    (y) => y
      .option('config', { type: 'string', default: inRoot('config.yaml'), describe: 'config.yaml with the `etcd:` section and the profiles' })
      .option('profiles-dir', { type: 'string', default: inRoot('profiles') })
      .option('cluster-directory', { type: 'string', default: inRoot('clusters') })
      .option('etcd-store-endpoints', { type: 'string', describe: 'comma-separated etcd client URLs (default: config etcd.endpoints)' })
      .option('to', { choices: ['etcd', 'git'] as const, default: 'etcd' as const, describe: 'etcd: the cluster directory into etcd; git: etcd back into the cluster directory (single-node mayu serves it after)' }),
    async (argv) => {
      try {
        const { config, profiles } = await loadConfig(path.resolve(argv.config), path.resolve(argv['profiles-dir']));
        const endpoints = argv['etcd-store-endpoints']?.split(',').map((e) => e.trim()).filter(Boolean) ?? config.etcd?.endpoints;
        if (!endpoints?.length) throw new ConfigError(`${argv.config}: no \`etcd:\` section and no --etcd-store-endpoints`);
        const file = (f: string | undefined) => f && path.resolve(path.dirname(path.resolve(argv.config)), f);
        const tls = config.etcd?.tls;
        const client = await connectEtcd({ endpoints, tls: tls && { caFile: file(tls.ca_file), certFile: file(tls.cert_file), keyFile: file(tls.key_file) }, requestTimeoutMs: config.etcd?.request_timeout_ms });
        try {
          if (argv.to === 'git') {
            const dir = path.resolve(argv['cluster-directory']);
            const back = await migrateFromEtcd({ dir, client, keys: new EtcdKeys(config.etcd?.prefix ?? '/mayu/'), zone: localZone(process.env['TZ']) });
            for (const key of back.ignored) process.stderr.write(`mayu migrate: ${key}: not a host record mayu wrote (bad JSON or conf): not migrated\n`);
            process.stdout.write(`${back.hosts} hosts in ${dir}, equal to etcd at revision ${back.revision} (${back.caughtUp} changes the history writer had not committed yet were committed); `
              + 'the history ends with one commit marking the migration; start single-node mayu on the directory (without --store etcd)\n');
            return;
          }
          const result = await migrateToEtcd({
            dir: path.resolve(argv['cluster-directory']),
            client,
            keys: new EtcdKeys(config.etcd?.prefix ?? '/mayu/'),
            limitedProfiles: new Set(profiles.filter((p) => p.quantity !== undefined).map((p) => p.name)),
          });
          process.stdout.write(`${result.hosts} hosts moved into etcd at ${endpoints.join(', ')} (${result.transactions} transactions); start the replicas with --store etcd\n`);
        } finally {
          client.close();
        }
      } catch (err) {
        process.stderr.write(`mayu migrate: ${(err as Error).message}\n`);
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

// mayu 0.11's command line starts this mayu: its flags are accepted, those with a meaning here
// take effect, the rest are named in one warning; flags 0.11 never had are still usage errors.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { after, describe, it } from 'node:test';
import { logLevelFor, snippetsDirFor } from '../src/cli/mayu-0.11-flags.ts';
import { FIXTURES, MAYU_NODE_FLAGS, ROOT, tempDir } from './helpers/mayu-process.ts';

const MAYU = path.join(ROOT, 'src/cli/mayu.ts');

function runMayu(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [...MAYU_NODE_FLAGS, '--import', 'tsx', MAYU, ...args], { cwd: ROOT }, (_err, stdout, stderr) =>
      resolve({ code: child.exitCode, stdout, stderr }));
  });
}

/** config.yaml of the fixtures with network.pxe off: 0.11's --dnsmasq is then given but not run. */
async function noPxeConfig(dir: string): Promise<string> {
  const file = path.join(dir, 'config.yaml');
  await writeFile(file, (await readFile(path.join(FIXTURES, 'config.yaml'), 'utf8')).replace('pxe: true', 'pxe: false'));
  return file;
}

describe('a mayu 0.11 deployment command line', () => {
  const started: ReturnType<typeof spawn>[] = [];
  after(() => {
    for (const p of started) if (p.exitCode === null) p.kill('SIGTERM');
  });

  async function start(args: string[]) {
    const proc = spawn(process.execPath, [...MAYU_NODE_FLAGS, '--import', 'tsx', MAYU, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    started.push(proc);
    let stderr = '';
    proc.stderr!.on('data', (d) => (stderr += d));
    const logs: Record<string, unknown>[] = [];
    const listening = await new Promise<Record<string, unknown>>((resolve, reject) => {
      createInterface({ input: proc.stdout! }).on('line', (line) => {
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        if (entry.msg === 'mayu listening') resolve(entry);
      });
      proc.once('exit', (code) => reject(new Error(`mayu exited with ${code}:\n${stderr}`)));
    });
    return { proc, logs, url: `http://127.0.0.1:${listening.port as number}` };
  }

  it('starts with the issue\'s exact flags (plus the glog and yochu flags of 0.11\'s image), -v 12 being debug, ignored flags named once', async () => {
    const dir = await tempDir();
    const template = path.join(dir, 'my_first_stage.sh');
    await writeFile(template, "#!/bin/sh\necho 'custom first stage for {{host.serial}}'\n");
    const m = await start([
      '--no-tls', '--cluster-directory', path.join(dir, 'cluster'), '--config', await noPxeConfig(dir), '--http-port', '0',
      '--http-bind-address', '127.0.0.1', '--dnsmasq', '/usr/sbin/dnsmasq', '-v', '12', '--use-internal-etcd-discovery=false',
      '--logtostderr', '--log_dir', dir, '--yochu-path', './yochu', '--static-html-path=./static_html',
      '--first-stage-script', template, '--etcd-quorum-size', '5', '--etcd-endpoint', '127.0.0.1:2379',
      // 0.11 exits (F... "no external discovery url is given") with =false and no URL: so does ours, below.
      '--etcd-discovery', 'https://discovery.etcd.io',
      // Not 0.11's: keeps the report key out of the project's run/.
      '--report-key-file', path.join(dir, 'report-key'),
    ]);
    const warnings = m.logs.filter((l) => typeof l.msg === 'string' && l.msg.includes('flags ignored'));
    assert.equal(warnings.length, 1);
    assert.deepEqual(warnings[0]!.flags, ['--log_dir', '--logtostderr', '--yochu-path', '--static-html-path']);
    const read = m.logs.find((l) => l.msg === 'command line read');
    assert.ok(read, '-v 12 logs at debug');
    assert.equal(read.level, 20);
    assert.equal(read.logLevel, 'debug');
    assert.deepEqual(read.etcdDiscovery, { internal: false, endpoint: '127.0.0.1:2379', quorumSize: 5, discoveryUrl: 'https://discovery.etcd.io' });
    const script = await fetch(`${m.url}/first-stage-script/node-1`);
    assert.equal(script.status, 200);
    assert.equal(await script.text(), "#!/bin/sh\necho 'custom first stage for node-1'\n");
    assert.equal((await (await fetch(`${m.url}/admin/hosts`)).json() as unknown[]).length, 1);
    m.proc.kill('SIGTERM');
    assert.equal(await new Promise((r) => m.proc.once('exit', r)), 0);
  });

  it('logs no debug line at -v 0 (0.11\'s default) and takes the 0.11 image\'s -v=12 / --cluster-directory= forms', async () => {
    const dir = await tempDir();
    const config = await noPxeConfig(dir);
    const quiet = await start(['--no-tls', '--cluster-directory', path.join(dir, 'a'), '--config', config, '--http-port', '0', '--http-bind-address', '127.0.0.1', '-v', '0', '--report-key-file', path.join(dir, 'k')]);
    assert.equal(quiet.logs.filter((l) => (l.level as number) < 30).length, 0);
    quiet.proc.kill('SIGTERM');
    const loud = await start([`--cluster-directory=${path.join(dir, 'b')}`, '-v=12', '--config', config, '--http-port', '0', '--http-bind-address', '127.0.0.1', '--report-key-file', path.join(dir, 'k')]);
    assert.ok(loud.logs.some((l) => l.msg === 'command line read'));
    assert.ok(existsSync(path.join(dir, 'b', 'cluster.json')));
  });
});

describe('mayu usage errors and one-shot flags', () => {
  it('--use-internal-etcd-discovery=false without --etcd-discovery stops with 0.11\'s message', async () => {
    const dir = await tempDir();
    const r = await runMayu(['--no-tls', '--cluster-directory', path.join(dir, 'c'), '--config', await noPxeConfig(dir), '--http-port', '0',
      '--http-bind-address', '127.0.0.1', '--report-key-file', path.join(dir, 'report-key'), '--use-internal-etcd-discovery=false']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /The internal etcd discovery is deactivated and no external discovery url is given/);
  });

  it('refuses a flag 0.11 never had with a usage error, exit 2, before anything starts', async () => {
    const dir = await tempDir();
    const r = await runMayu(['--no-tls', '--cluster-directory', path.join(dir, 'c'), '--bogus-flag', '--http-port', '0']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /Unknown argument: bogus-flag\n$/);
    assert.equal(existsSync(path.join(dir, 'c')), false);
  });

  it('refuses a value flag without its value, and a bad -v, with exit 2', async () => {
    const noValue = await runMayu(['--config']);
    assert.equal(noValue.code, 2);
    assert.match(noValue.stderr, /Not enough arguments following: config/);
    const badV = await runMayu(['-v', 'loud']);
    assert.equal(badV.code, 2);
    assert.match(badV.stderr, /-v: expected a verbosity level/);
    const badQuorum = await runMayu(['--etcd-quorum-size', '0']);
    assert.equal(badQuorum.code, 2);
  });

  it('--version prints the version and exits 0', async () => {
    const pkg = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const r = await runMayu(['--no-tls', '--version']);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, `mayu version ${pkg.version}\n`);
  });

  it('--show-templates prints the cloud-config for an empty host under 0.11\'s heading, writes nothing, exits 0', async () => {
    const dir = await tempDir();
    const r = await runMayu(['--no-tls', '--show-templates', '--config', path.join(FIXTURES, 'config.yaml'), '--cluster-directory', path.join(dir, 'c'), '--http-port', '4181', '-v', '12']);
    assert.equal(r.code, 0, r.stderr);
    const [heading, ...rest] = r.stdout.split('\n');
    assert.equal(heading, 'last stage cloud config:');
    assert.match(rest.join('\n'), /^#cloud-config\n/);
    assert.match(r.stdout, /MAYU_URL=http:\/\/127\.0\.0\.1:4181\\n/);
    assert.match(r.stdout, /hostname: ""/);
    assert.equal(existsSync(path.join(dir, 'c')), false);
  });

  it('--show-templates --use-ignition prints the Ignition config; --last-stage-cloudconfig points at another template', async () => {
    const ign = await runMayu(['--show-templates', '--use-ignition', '--config', path.join(FIXTURES, 'config.yaml')]);
    assert.equal(ign.code, 0, ign.stderr);
    assert.ok(ign.stdout.startsWith('ignition config:\n{'));
    assert.equal((JSON.parse(ign.stdout.slice('ignition config:\n'.length)) as { ignition: { version: string } }).ignition.version, '3.3.0');

    const dir = await tempDir();
    const mine = path.join(dir, 'mine.yaml');
    await writeFile(mine, '#cloud-config\nhostname: "{{host.hostname}}"\nmayu: "{{mayu_url}}"\n');
    const cc = await runMayu(['--show-templates', '--config', path.join(FIXTURES, 'config.yaml'), '--last-stage-cloudconfig', mine]);
    assert.equal(cc.stdout, 'last stage cloud config:\n#cloud-config\nhostname: ""\nmayu: "http://127.0.0.1:4080"\n');

    await writeFile(mine, 'hostname: {{host.nosuchkey}}\n');
    const bad = await runMayu(['--show-templates', '--config', path.join(FIXTURES, 'config.yaml'), '--last-stage-cloudconfig', mine]);
    assert.equal(bad.code, 1);
    assert.equal(bad.stdout, '');
    assert.match(bad.stderr, /--show-templates: .*nosuchkey/);
  });
});

describe('0.11 flag meanings (pure)', () => {
  it('maps glog verbosity and -d to a log level', () => {
    const table: [number | undefined, boolean, string][] = [
      [undefined, false, 'info'], [0, false, 'info'], [2, false, 'info'], [3, false, 'debug'], [12, false, 'debug'], [0, true, 'debug'],
    ];
    for (const [v, d, level] of table) assert.equal(logLevelFor(v, d), level, `-v ${v} -d ${d}`);
  });

  it('takes 0.11\'s template_snippets/cloudconfig as our template_snippets folder', () => {
    assert.equal(snippetsDirFor(path.join(ROOT, 'template_snippets/cloudconfig')), path.join(ROOT, 'template_snippets'));
    assert.equal(snippetsDirFor(path.join(ROOT, 'template_snippets/ignition')), path.join(ROOT, 'template_snippets'));
    assert.equal(snippetsDirFor(path.join(ROOT, 'template_snippets')), path.join(ROOT, 'template_snippets'));
  });
});

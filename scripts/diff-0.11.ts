// Differential check against the real mayu 0.11.1: runs it (../shared/reference/mayu-0.11, with
// its etcd, on loopback) and this mayu side by side, sends both the same requests, and compares
// answers, conf.json, cluster.json, history, .git/config and the real 0.11 mayuctl's output
// against both. Masked, as random by design: MachineID, Hostname (its first 16 digits), etcd
// tokens, and LastBoot's clock digits (its form and offset are compared).
//
//   npx tsx scripts/diff-0.11.ts [--tz Europe/Berlin] [--reference ../shared/reference/mayu-0.11] [--record test/fixtures/mayu-0.11]
//
// Prints one line per check: `same`, `differs (deliberate: why)` or `DIFFERS`; exits 1 if any
// difference is not a deliberate one (README "Coming from mayu 0.11"). --record writes 0.11's
// side (masked) as the suite's fixtures.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { maskRandom } from './mask-0.11.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const run = promisify(execFile);
const { values: opts } = parseArgs({
  options: {
    tz: { type: 'string', default: 'Europe/Berlin' },
    reference: { type: 'string', default: path.resolve(ROOT, '../shared/reference/mayu-0.11') },
    record: { type: 'string' },
  },
});
const REF = path.resolve(opts.reference!);
const CONFIG = path.join(ROOT, 'test/fixtures/config.yaml');

/** Differences we keep on purpose, by check name (README "Coming from mayu 0.11"). */
const DELIBERATE: Record<string, string> = {
  'boot_complete without versions: conf.json': '0.11 blanked the stored versions; we keep them (a report without versions is no evidence they changed)',
  'set metadata "": answer': '0.11 stored [""]; we refuse metadata that is not key=value',
  'set metadata "": conf.json': '0.11 stored [""]; we refuse metadata that is not key=value',
  'final-cloud-config with bad JSON: answer': 'Go\'s decoder message; ours names the request like every other JSON error',
  'final-cloud-config with a wrong type: answer': 'Go\'s decoder message; ours names the request like every other JSON error',
};

const freePort = () => new Promise<number>((resolve) => {
  const s = createServer().listen(0, '127.0.0.1', () => {
    const { port } = s.address() as { port: number };
    s.close(() => resolve(port));
  });
});

async function waitFor(url: string, proc: ChildProcess, log: () => string) {
  for (let i = 0; i < 150; i++) {
    if (proc.exitCode !== null) throw new Error(`${url}: exited ${proc.exitCode}\n${log()}`);
    if (await fetch(url).then((r) => r.ok, () => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${url} did not answer\n${log()}`);
}

function start(command: string, args: string[], cwd: string, env: Record<string, string>) {
  // Own process group (detached), so the whole group is stopped by its PID afterwards.
  const proc = spawn(command, args, { cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  return { proc, log: () => out.slice(-4000) };
}

const stop = async (proc: ChildProcess) => {
  if (proc.exitCode !== null || proc.pid === undefined) return;
  const gone = new Promise((r) => proc.once('exit', r));
  process.kill(-proc.pid, 'SIGTERM');
  await Promise.race([gone, new Promise((r) => setTimeout(r, 10_000))]);
};

interface Side {
  name: '0.11' | 'ours';
  url: string;
  port: number;
  cluster: string;
}

const mayuctl011 = async (side: Side, args: string[]) => {
  const r = await run(path.join(REF, 'bin/mayuctl'), ['--no-tls', '--host', '127.0.0.1', '--port', String(side.port), ...args], { env: { ...process.env, TZ: opts.tz } })
    .then((x) => ({ code: 0, ...x }), (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }));
  // 0.11's mayuctl logs errors with Go's log timestamp: not part of the answer.
  return `exit ${r.code}\n${r.stdout}${r.stderr.replace(/^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d /gm, '')}`;
};

const request = async (side: Side, method: string, route: string, body?: string) => {
  const res = await fetch(`${side.url}${route}`, { method, body });
  return `${res.status} ${await res.text()}`;
};

const conf = (side: Side, serial: string) => readFile(path.join(side.cluster, serial, 'conf.json'), 'utf8');

async function masker(side: Side): Promise<(text: string) => string> {
  const hosts = JSON.parse(await (await fetch(`${side.url}/admin/hosts`)).text()) as Record<string, string>[];
  const cluster = JSON.parse(await readFile(path.join(side.cluster, 'cluster.json'), 'utf8')) as { Config: { DefaultEtcdClusterToken: string } };
  return (text) => maskRandom(text, hosts, cluster.Config.DefaultEtcdClusterToken);
}

async function main() {
  const work = await mkdtemp(path.join(tmpdir(), 'mayu-diff-'));
  await mkdir(path.join(work, 'ref'));
  const [p011, pOurs] = [await freePort(), await freePort()];
  const env = { TZ: opts.tz! };
  const ref = start(path.join(REF, 'run-0.11.sh'), [CONFIG, path.join(work, 'ref/cluster'), String(p011)], REF, env);
  const ours = start(process.execPath, [
    '--import', 'tsx', path.join(ROOT, 'src/cli/mayu.ts'),
    // 0.11's command line, as run-0.11.sh gives it (no etcd endpoint: we serve discovery ourselves) ...
    '--no-tls', '--config', CONFIG, '--cluster-directory', path.join(work, 'ours/cluster'), '--http-port', String(pOurs),
    '--http-bind-address', '127.0.0.1',
    // ... and ours: no dnsmasq (0.11's is a stand-in), reports without tokens as 0.11's machines send them.
    '--no-dnsmasq', '--insecure-reports', '--report-key-file', path.join(work, 'ours/report-key'), '--run-dir', path.join(work, 'ours/run'),
  ], ROOT, env);
  const sides: Side[] = [
    { name: '0.11', url: `http://127.0.0.1:${p011}`, port: p011, cluster: path.join(work, 'ref/cluster') },
    { name: 'ours', url: `http://127.0.0.1:${pOurs}`, port: pOurs, cluster: path.join(work, 'ours/cluster') },
  ];
  const results: { check: string; texts: string[] }[] = [];
  try {
    await waitFor(`${sides[0]!.url}/`, ref.proc, ref.log);
    await waitFor(`${sides[1]!.url}/`, ours.proc, ours.log);
    const both = async (check: string, f: (s: Side) => Promise<string>) => {
      const texts = [];
      for (const s of sides) texts.push(await f(s)); // one side after the other: same order of events
      results.push({ check, texts });
    };
    const statusOnly = async (s: Side, method: string, route: string, body?: string) => (await request(s, method, route, body)).split(' ')[0]!;
    const walk = async (serial: string, mac: string, versions: string) => {
      await both(`${serial}: first-stage-script status`, (s) => statusOnly(s, 'GET', `/first-stage-script/${serial}`));
      await both(`${serial}: final-cloud-config status`, (s) => statusOnly(s, 'POST', '/final-cloud-config.yaml', JSON.stringify({ Serial: serial, NetDevs: [{ Name: 'ens3', MacAddress: mac }], IPMIAddress: '', ConnectedNIC: 'ens3' })));
      await both(`${serial}: set_installed`, (s) => request(s, 'PUT', `/admin/host/${serial}/set_installed`));
      await both(`${serial}: boot_complete`, (s) => request(s, 'PUT', `/admin/host/${serial}/boot_complete`, versions));
    };
    await walk('ref-1', '52:54:00:aa:bb:01', '{"ConnectedNIC":"","LastBoot":"0001-01-01T00:00:00Z","State":"unknown","CoreOSVersion":"1010.5.0","MayuVersion":"0.11.1"}');
    await walk('ref-2', '52:54:00:aa:bb:02', '{"CoreOSVersion":"1010.5.0","DockerVersion":"1.10.3"}');
    results.push({ check: 'ref-1: conf.json after the walk', texts: await Promise.all(sides.map((s) => conf(s, 'ref-1'))) });
    await both('GET /admin/hosts: ends with a newline', async (s) => String((await (await fetch(`${s.url}/admin/hosts`)).text()).endsWith(']\n')));
    await both('mayuctl list', (s) => mayuctl011(s, ['list']));
    await both('mayuctl status ref-1', (s) => mayuctl011(s, ['status', 'ref-1']));
    await both('boot_complete without versions: answer', (s) => request(s, 'PUT', '/admin/host/ref-2/boot_complete', '{}'));
    await both('boot_complete without versions: conf.json', (s) => conf(s, 'ref-2'));
    await both('set state installed on a running host: mayuctl', (s) => mayuctl011(s, ['set', 'ref-1', 'state', 'installed']));
    await both('set state installed on a running host: conf.json', (s) => conf(s, 'ref-1'));
    await both('set state running: mayuctl', (s) => mayuctl011(s, ['set', 'ref-1', 'state', 'running']));
    await both('set state running: conf.json', (s) => conf(s, 'ref-1'));
    await both('set_metadata with bad JSON: answer', (s) => request(s, 'PUT', '/admin/host/ref-2/set_metadata', '{"FleetMetadata":'));
    await both('boot_complete with bad JSON: answer', (s) => request(s, 'PUT', '/admin/host/ref-2/boot_complete', '{"CoreOSVersion":'));
    await both('final-cloud-config with bad JSON: answer', (s) => request(s, 'POST', '/final-cloud-config.yaml', '{"Serial":'));
    await both('final-cloud-config with a wrong type: answer', (s) => request(s, 'POST', '/final-cloud-config.yaml', '{"Serial":1}'));
    await both('setter on an unknown host', (s) => request(s, 'PUT', '/admin/host/nobody/set_provider_id', '{"ProviderId":"x"}'));
    await both('history: author, committer, offset, subject', async (s) =>
      (await run('git', ['-C', s.cluster, 'log', '--reverse', '--format=%an <%ae>|%cn <%ce>|%ad|%s', '--date=format:%z'])).stdout);
    await both('.git/config', (s) => readFile(path.join(s.cluster, '.git/config'), 'utf8'));
    await both('cluster.json', (s) => readFile(path.join(s.cluster, 'cluster.json'), 'utf8'));
    // Last: 0.11 commits this one and we refuse it, so the histories above would differ by it.
    await both('set metadata "": answer', (s) => mayuctl011(s, ['set', 'ref-2', 'metadata', '']));
    await both('set metadata "": conf.json', (s) => conf(s, 'ref-2'));

    const masks = await Promise.all(sides.map(masker));
    let unexpected = 0;
    for (const r of results) {
      const [a, b] = r.texts.map((t, i) => masks[i]!(t));
      const why = DELIBERATE[r.check];
      if (a === b) console.log(`same                ${r.check}`);
      else if (why) console.log(`differs (deliberate) ${r.check}: ${why}`);
      else {
        unexpected++;
        console.log(`DIFFERS             ${r.check}\n  0.11: ${JSON.stringify(a)}\n  ours: ${JSON.stringify(b)}`);
      }
    }
    if (opts.record) {
      const dir = path.resolve(opts.record);
      await mkdir(dir, { recursive: true });
      const of = (check: string) => masks[0]!(results.find((r) => r.check === check)!.texts[0]!);
      await writeFile(path.join(dir, 'walk-conf.json'), of('ref-1: conf.json after the walk'));
      await writeFile(path.join(dir, 'mayuctl-status.txt'), of('mayuctl status ref-1'));
      await writeFile(path.join(dir, 'mayuctl-list.txt'), of('mayuctl list'));
      await writeFile(path.join(dir, 'history.txt'), of('history: author, committer, offset, subject'));
      console.log(`recorded 0.11's side into ${dir} (TZ=${opts.tz})`);
    }
    console.log(unexpected ? `${unexpected} unexpected difference(s)` : 'no unexpected differences');
    process.exitCode = unexpected ? 1 : 0;
  } finally {
    await stop(ours.proc);
    await stop(ref.proc);
  }
}

await main();

// HTTP throughput of the real `mayu serve` process.
//   npm run bench:http -- [--seconds 10] [--connections 100] [--latency-connections 10]
//                         [--clients 50] [--file-mb 64] [--rounds 2] [--only render|download]
//                         [--profile] [--max-wait 300]
//
// 1. Render throughput (autocannon, programmatic): a host `bench-1` is registered and POSTed once
//    (state installing), then for --seconds each, at --connections connections:
//      GET /ipxebootscript?serial=bench-1&…   (looks the host up, answers its boot script)
//      POST /final-cloud-config.yaml          (same HostData again: a no-op success that renders
//                                              the cloud-config and must write no commit)
//    Each also at --latency-connections (closed loop: latency ~ connections / throughput, so the
//    p99 goal can only be met at low concurrency). Twice: "piped" = mayu as the tests start it (stdout, one JSON log line per request, read by
//    this process), and "devnull" = the same process with stdout on /dev/null.
//    --profile adds one more devnull run per route under `node --cpu-prof` and prints where
//    mayu's CPU time goes (self time by package/file).
// 2. File download: a --file-mb random file as images/vmlinuz, --clients concurrent keep-alive
//    clients downloading it over and over for --seconds, from mayu (GET /images/vmlinuz) and then
//    from Debian's nginx (sendfile on, 2 workers) serving the same folder; same client for both,
//    --rounds times alternately; the ratio is of the medians. Needs `nginx` (apt-get install nginx-light).
//
// Client, server and log reader share this machine's CPUs: the figures are for loopback on it.
// Before every measured row the bench waits (bounded by --max-wait) until nothing else keeps the
// CPUs busy, and each row reports `other cpu`, the cores used by anything else meanwhile.
import autocannon from 'autocannon';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { cpus } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { hostData, macFor, startMayu, tempDir } from '../test/helpers/mayu-process.ts';
import { childPids, Cleanup, runBench, cpuSeconds, freePort, machineBusySeconds, median, percentile, round, rssMb, sleep, startMayuQuiet, stopChild, table, waitForQuiet, waitHttp } from './bench-util.ts';
import { commitCount } from './seed-repo.ts';

const { values: flags } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '100' },
    'latency-connections': { type: 'string', default: '10' },
    clients: { type: 'string', default: '50' },
    rounds: { type: 'string', default: '2' },
    'file-mb': { type: 'string', default: '64' },
    profile: { type: 'boolean', default: false },
    only: { type: 'string', default: '' }, // 'render' or 'download'
    'max-wait': { type: 'string', default: '300' }, // seconds to wait for a quiet machine first
  },
});
const SECONDS = Math.min(120, Math.max(1, Number(flags.seconds)));
const CONNECTIONS = Math.min(1000, Math.max(1, Number(flags.connections)));
const LATENCY_CONNECTIONS = Math.min(1000, Math.max(0, Number(flags['latency-connections'])));
const CLIENTS = Math.min(500, Math.max(1, Number(flags.clients)));
const ROUNDS = Math.min(10, Math.max(1, Number(flags.rounds)));
const FILE_MB = Math.min(1024, Math.max(1, Number(flags['file-mb'])));
const WARMUP_SECONDS = 2;
const MAX_WAIT = Math.min(3600, Math.max(0, Number(flags['max-wait'])));
/** Before each measured row: wait (bounded) until nothing else keeps the CPUs busy. */
const gate = () => waitForQuiet(Math.min(MAX_WAIT, 120));
const GOAL = { rps: 5000, p99Ms: 5, downloadRatio: 0.8 };
const SERIAL = 'bench-1';
const MiB = 1024 * 1024;

const cleanup = new Cleanup();

// ---------------------------------------------------------------- render throughput (autocannon)

interface RenderResult {
  mode: 'piped' | 'devnull';
  route: string;
  connections: number;
  seconds: number;
  requests: number;
  rps: number;
  /** Exact, from every response's time (autocannon's own histogram has 1 ms steps). */
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  autocannonP50Ms: number;
  autocannonP99Ms: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  /** CPU seconds per second of the mayu process (1.0 = one core busy). */
  serverCpu: number;
  /** Same for this process (autocannon + log reader). */
  clientCpu: number;
  /** Cores busy with anything else on the machine meanwhile (should be ~0). */
  otherCpu: number;
  quietBefore: boolean;
  serverRssMb: number;
  logLinesRead?: number;
  commitsBefore?: number;
  commitsAfter?: number;
}

interface Target {
  route: string;
  method: 'GET' | 'POST';
  path: string;
  body?: string;
  headers?: Record<string, string>;
}

const postBody = JSON.stringify(hostData(SERIAL, macFor(1)));
const TARGETS: Target[] = [
  // As iPXE asks after mayu's chain script: with its identity, so mayu looks the host up and
  // renders its boot script (the bare URL only answers the small chain script).
  { route: 'GET /ipxebootscript?serial=…', method: 'GET', path: `/ipxebootscript?serial=${SERIAL}&mac=${macFor(1).replaceAll(':', '-')}&uuid=` },
  { route: 'POST /final-cloud-config.yaml', method: 'POST', path: '/final-cloud-config.yaml', body: postBody, headers: { 'content-type': 'application/json' } },
];

function cannon(url: string, t: Target, seconds: number, connections: number, onResponse?: (ms: number) => void): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => {
    const inst = autocannon(
      { url: url + t.path, method: t.method, body: t.body, headers: t.headers, connections, duration: seconds, pipelining: 1 },
      (err, result) => (err ? reject(err) : resolve(result)),
    );
    if (onResponse) inst.on('response', (_c, _status, _bytes, ms) => onResponse(ms));
  });
}

const LAT_CAP = 5_000_000;
const latencies = new Float64Array(LAT_CAP);

async function renderRun(mode: RenderResult['mode'], url: string, pid: number, t: Target, connections: number, extra: { clusterDir: string; logs?: unknown[] }): Promise<RenderResult> {
  const quiet = await gate();
  if (extra.logs) extra.logs.length = 0;
  const commitsBefore = t.method === 'POST' ? commitCount(extra.clusterDir) : undefined;
  let n = 0;
  const cpu0 = cpuSeconds(pid);
  const self0 = process.cpuUsage();
  const all0 = machineBusySeconds();
  const t0 = performance.now();
  const r = await cannon(url, t, SECONDS, connections, (ms) => {
    if (n < LAT_CAP) latencies[n++] = ms;
  });
  const wall = (performance.now() - t0) / 1000;
  const self = process.cpuUsage(self0);
  const cpu = cpuSeconds(pid) - cpu0;
  const other = machineBusySeconds() - all0 - cpu - (self.user + self.system) / 1e6;
  const logLinesRead = extra.logs?.length;
  if (extra.logs) extra.logs.length = 0;
  return {
    mode, route: t.route, connections, seconds: round(wall, 1),
    requests: r.requests.total,
    rps: Math.round(r.requests.total / wall),
    p50Ms: round(percentile(latencies, n, 50), 3),
    p99Ms: round(percentile(latencies, n, 99), 3),
    maxMs: round(percentile(latencies, n, 100), 2),
    autocannonP50Ms: r.latency.p50,
    autocannonP99Ms: r.latency.p99,
    errors: r.errors, timeouts: r.timeouts, non2xx: r.non2xx,
    serverCpu: round(cpu / wall, 2),
    clientCpu: round((self.user + self.system) / 1e6 / wall, 2),
    otherCpu: round(Math.max(0, other) / wall, 2),
    quietBefore: quiet.quiet,
    serverRssMb: rssMb(pid),
    ...(logLinesRead !== undefined ? { logLinesRead } : {}),
    ...(commitsBefore !== undefined ? { commitsBefore, commitsAfter: commitCount(extra.clusterDir) } : {}),
  };
}

async function registerHost(url: string): Promise<string> {
  const first = await fetch(`${url}/first-stage-script/${SERIAL}`);
  await first.text();
  if (!first.ok) throw new Error(`first-stage-script: ${first.status}`);
  const post = await fetch(`${url}/final-cloud-config.yaml`, { method: 'POST', body: postBody, headers: { 'content-type': 'application/json' } });
  await post.text();
  if (!post.ok) throw new Error(`final-cloud-config: ${post.status}`);
  const host = (await (await fetch(`${url}/admin/host/${SERIAL}`)).json()) as { State?: unknown };
  return String(host.State);
}

// ---------------------------------------------------------------- CPU profile summary (--profile)

interface ProfileNode { id: number; callFrame: { functionName: string; url: string }; }
interface CpuProfile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number; }

/**
 * Self time by package (node_modules/<pkg>), project file (src/...), node internals, GC, counting
 * only samples taken between `fromUs` and `toUs` after the profile started (the measured run,
 * not start-up or warm-up).
 */
function summarizeProfile(profile: CpuProfile, fromUs: number, toUs: number): { where: string; pct: number }[] {
  const group = new Map<number, string>();
  for (const n of profile.nodes) {
    const u = n.callFrame.url;
    const fn = n.callFrame.functionName;
    let g: string;
    if (!u) g = fn.startsWith('(') ? fn : `(native) ${fn || 'anonymous'}`;
    else if (u.includes('/node_modules/')) {
      const rest = u.slice(u.lastIndexOf('/node_modules/') + 14).split('/');
      g = rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
    } else if (u.startsWith('node:')) g = `node:${u.slice(5).split('/').slice(0, 2).join('/')}`;
    else if (u.includes('/src/')) g = u.slice(u.lastIndexOf('/src/') + 1);
    else g = u;
    group.set(n.id, g);
  }
  const time = new Map<string, number>();
  let total = 0;
  let at = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    at += dt;
    if (at < fromUs || at > toUs) return;
    const g = group.get(id) ?? '?';
    if (g === '(idle)') return;
    time.set(g, (time.get(g) ?? 0) + dt);
    total += dt;
  });
  return [...time.entries()].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([where, t]) => ({ where, pct: round((100 * t) / total, 1) }));
}

async function profileRun(workDir: string, t: Target): Promise<{ route: string; connections: number; rps: number; topSelfTime: { where: string; pct: number }[] }> {
  const dir = path.join(workDir, `cpuprof-${t.method}`);
  await mkdir(dir, { recursive: true });
  const spawned = performance.now();
  const m = await startMayuQuiet({ workDir, nodeArgs: ['--cpu-prof', '--cpu-prof-dir', dir] });
  cleanup.watchPid(m.proc.pid);
  try {
    await cannon(m.url, t, WARMUP_SECONDS, CONNECTIONS);
    await gate();
    const from = performance.now();
    const r = await cannon(m.url, t, SECONDS, CONNECTIONS);
    const to = performance.now();
    await m.stop();
    const files = (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile'));
    if (!files.length) throw new Error('no .cpuprofile written');
    // One file per thread (main + tsx's loader thread): the busiest is the main thread.
    let best: CpuProfile | undefined;
    for (const f of files) {
      const p = JSON.parse(await readFile(path.join(dir, f), 'utf8')) as CpuProfile;
      if (!best || p.samples.length > best.samples.length) best = p;
    }
    // The profile starts within a few ms of the spawn; keep the middle of the measured run.
    const fromUs = (from - spawned) * 1000 + 500_000;
    const toUs = (to - spawned) * 1000 - 500_000;
    return { route: t.route, connections: CONNECTIONS, rps: Math.round(r.requests.total / r.duration), topSelfTime: summarizeProfile(best!, fromUs, toUs) };
  } finally {
    await m.stop();
    cleanup.unwatchPid(m.proc.pid);
  }
}

// ---------------------------------------------------------------- file download (mayu vs nginx)

interface DownloadResult {
  server: 'mayu' | 'nginx';
  round: number;
  url: string;
  seconds: number;
  MiBps: number;
  completeDownloads: number;
  errors: number;
  /** CPU seconds per second of the server (all its processes), and of this client process. */
  serverCpu: number;
  clientCpu: number;
  otherCpu: number;
  quietBefore: boolean;
}

/**
 * `clients` loops, each GETting `url` again and again on a keep-alive agent until the deadline,
 * counting body bytes received before it; downloads still running at the deadline are aborted.
 */
async function download(url: string, size: number, seconds: number, serverPids: () => number[]): Promise<Omit<DownloadResult, 'server' | 'round'>> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });
  const MAX_REQUESTS_PER_CLIENT = 100_000;
  let bytes = 0;
  let complete = 0;
  let errors = 0;
  const inflight = new Set<http.ClientRequest>();
  const once = (deadline: number) => new Promise<void>((resolve) => {
    let got = 0;
    const req = http.get(url, { agent }, (res) => {
      res.on('data', (chunk: Buffer) => {
        got += chunk.length;
        if (Date.now() <= deadline) bytes += chunk.length;
      });
      res.on('end', () => {
        if (res.statusCode === 200 && got === size) complete++;
        else errors++;
      });
      res.on('error', () => {});
      res.on('close', () => { inflight.delete(req); resolve(); });
    });
    inflight.add(req);
    req.on('error', () => {
      if (Date.now() < deadline) errors++;
      inflight.delete(req);
      resolve();
    });
  });
  const quiet = await gate();
  const pids = serverPids();
  const cpu0 = pids.reduce((s, p) => s + cpuSeconds(p), 0);
  const self0 = process.cpuUsage();
  const all0 = machineBusySeconds();
  const t0 = performance.now();
  const deadline = Date.now() + seconds * 1000;
  const stopper = setTimeout(() => { for (const r of inflight) r.destroy(); }, seconds * 1000 + 5);
  await Promise.all(Array.from({ length: CLIENTS }, async () => {
    for (let i = 0; i < MAX_REQUESTS_PER_CLIENT && Date.now() < deadline; i++) await once(deadline);
  }));
  clearTimeout(stopper);
  const wall = Math.min((performance.now() - t0) / 1000, seconds);
  const self = process.cpuUsage(self0);
  const cpu = pids.reduce((s, p) => s + cpuSeconds(p), 0) - cpu0;
  const other = machineBusySeconds() - all0 - cpu - (self.user + self.system) / 1e6;
  agent.destroy();
  return {
    url, seconds: round(wall, 1), MiBps: Math.round(bytes / MiB / wall), completeDownloads: complete, errors,
    serverCpu: round(cpu / wall, 2), clientCpu: round((self.user + self.system) / 1e6 / wall, 2), otherCpu: round(Math.max(0, other) / wall, 2),
    quietBefore: quiet.quiet,
  };
}

async function startNginx(dir: string, root: string, port: number): Promise<ChildProcess> {
  const conf = path.join(dir, 'nginx.conf');
  await writeFile(conf, [
    'daemon off;',
    'master_process on;',
    'worker_processes 2;',
    'user root;', // the temp dirs are 0700 root; workers must read the file
    `pid ${path.join(dir, 'nginx.pid')};`,
    `error_log ${path.join(dir, 'error.log')} warn;`,
    'events { worker_connections 1024; }',
    'http {',
    '  sendfile on;',
    '  tcp_nopush on;',
    '  access_log off;',
    '  keepalive_requests 100000;',
    '  default_type application/octet-stream;',
    `  server { listen 127.0.0.1:${port}; root ${root}; }`,
    '}',
    '',
  ].join('\n'));
  const proc = spawn('nginx', ['-p', `${dir}/`, '-c', conf, '-e', path.join(dir, 'error.log')], { stdio: ['ignore', 'ignore', 'pipe'] });
  cleanup.watchPid(proc.pid);
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d));
  const died = new Promise<never>((_, reject) => proc.once('exit', (code) => reject(new Error(`nginx exited with ${code}: ${stderr}`))));
  died.catch(() => {});
  await Promise.race([waitHttp(`http://127.0.0.1:${port}/vmlinuz`, 10_000, 'HEAD'), died]);
  return proc;
}

async function stopNginx(proc: ChildProcess): Promise<void> {
  const workers = proc.pid ? childPids(proc.pid) : [];
  await stopChild(proc); // SIGTERM to the master: it stops its workers and exits
  for (const pid of workers) {
    try { process.kill(pid, 0); process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
  }
  cleanup.unwatchPid(proc.pid);
}

// ---------------------------------------------------------------- main

async function renderAll(mode: RenderResult['mode'], url: string, pid: number, clusterDir: string, logs?: unknown[]): Promise<RenderResult[]> {
  const out: RenderResult[] = [];
  for (const t of TARGETS) {
    await cannon(url, t, WARMUP_SECONDS, CONNECTIONS); // JIT warm-up, discarded
    for (const c of LATENCY_CONNECTIONS && LATENCY_CONNECTIONS !== CONNECTIONS ? [CONNECTIONS, LATENCY_CONNECTIONS] : [CONNECTIONS]) {
      out.push(await renderRun(mode, url, pid, t, c, { clusterDir, logs }));
    }
  }
  return out;
}

async function main() {
  const doRender = flags.only !== 'download';
  const doDownload = flags.only !== 'render';
  const machine = await waitForQuiet(MAX_WAIT);
  if (!machine.quiet) console.error(`machine not quiet (${machine.busyCores} cores busy): figures are skewed`);
  const workDir = await tempDir('mayu-bench-http-');
  cleanup.add('remove work dir', () => rm(workDir, { recursive: true, force: true }));
  const imagesDir = path.join(workDir, 'images');
  const clusterDir = path.join(workDir, 'clusters');
  await mkdir(imagesDir, { recursive: true });
  const fileSize = FILE_MB * MiB;
  if (doDownload) {
    // Written and fsync'd up front, so no write-back of it runs during the measurements.
    const fh = await open(path.join(imagesDir, 'vmlinuz'), 'w');
    for (let off = 0; off < fileSize; off += 4 * MiB) await fh.write(randomBytes(Math.min(4 * MiB, fileSize - off)));
    await fh.sync();
    await fh.close();
  }

  const render: RenderResult[] = [];
  const downloads: DownloadResult[] = [];

  // mayu as the tests run it: stdout piped into this process, every log line parsed.
  const m = await startMayu({ workDir });
  cleanup.watchPid(m.proc.pid);
  cleanup.add('stop mayu (piped)', () => m.stop());
  const pid = m.proc.pid!;
  const hostState = await registerHost(m.url);
  if (hostState !== 'installing') throw new Error(`${SERIAL} is ${hostState}, expected installing`);
  if (doRender) render.push(...(await renderAll('piped', m.url, pid, clusterDir, m.logs)));

  if (doDownload) {
    // mayu (this process, idle log pipe) and nginx on the same folder, both running; the same
    // client measures them in turn, ROUNDS times, after a short discarded warm-up of each.
    const nginxDir = path.join(workDir, 'nginx');
    await mkdir(nginxDir);
    const nginxPort = await freePort();
    const nginx = await startNginx(nginxDir, imagesDir, nginxPort);
    cleanup.add('stop nginx', () => stopNginx(nginx));
    try {
      const targets = [
        { server: 'mayu' as const, url: `${m.url}/images/vmlinuz`, pids: () => [pid] },
        { server: 'nginx' as const, url: `http://127.0.0.1:${nginxPort}/vmlinuz`, pids: () => [nginx.pid!, ...childPids(nginx.pid!)] },
      ];
      for (const t of targets) await download(t.url, fileSize, 1, () => []);
      for (let round = 1; round <= ROUNDS; round++) {
        for (const t of targets) downloads.push({ server: t.server, round, ...(await download(t.url, fileSize, SECONDS, t.pids)) });
      }
    } finally {
      await stopNginx(nginx);
    }
  }
  m.logs.length = 0;
  await m.stop();
  cleanup.unwatchPid(pid);

  if (doRender) {
    // mayu again on the same cluster, stdout on /dev/null.
    const q = await startMayuQuiet({ workDir });
    cleanup.watchPid(q.proc.pid);
    cleanup.add('stop mayu (devnull)', () => q.stop());
    render.push(...(await renderAll('devnull', q.url, q.proc.pid!, clusterDir)));
    await q.stop();
    cleanup.unwatchPid(q.proc.pid);
  }

  const profiles = [];
  if (doRender && flags.profile) for (const t of TARGETS) profiles.push(await profileRun(workDir, t));

  const medianMiBps = (server: string) => median(downloads.filter((d) => d.server === server).map((d) => d.MiBps));
  const downloadMedianMiBps = downloads.length ? { mayu: medianMiBps('mayu'), nginx: medianMiBps('nginx') } : undefined;
  const ratio = downloadMedianMiBps ? round(downloadMedianMiBps.mayu / downloadMedianMiBps.nginx, 2) : undefined;
  const summary = {
    bench: 'http-throughput',
    machine: { cpus: cpus().length, node: process.version, quietAtStart: machine.quiet, busyCoresAtStart: machine.busyCores, waitedSeconds: machine.waitedSeconds },
    settings: { seconds: SECONDS, warmupSeconds: WARMUP_SECONDS, connections: CONNECTIONS, latencyConnections: LATENCY_CONNECTIONS, downloadClients: CLIENTS, downloadRounds: ROUNDS, fileMiB: FILE_MB },
    goals: { rps: `>= ${GOAL.rps}`, p99Ms: `< ${GOAL.p99Ms}`, downloadRatio: `>= ${GOAL.downloadRatio}` },
    render: render.map((r) => ({ ...r, meetsGoal: r.rps >= GOAL.rps && r.p99Ms < GOAL.p99Ms && r.errors === 0 && r.non2xx === 0 })),
    postWroteNoCommit: render.filter((r) => r.commitsBefore !== undefined).every((r) => r.commitsBefore === r.commitsAfter),
    downloads,
    downloadMedianMiBps,
    downloadRatioMayuToNginx: ratio,
    downloadMeetsGoal: ratio === undefined ? undefined : ratio >= GOAL.downloadRatio,
    ...(profiles.length ? { cpuProfile: profiles } : {}),
  };
  console.log(JSON.stringify(summary, null, 2));
  if (render.length) {
    console.log(`\nrender throughput, ${SECONDS} s per row (goal >= ${GOAL.rps} req/s and p99 < ${GOAL.p99Ms} ms; closed loop: mean latency ~ connections / req/s)`);
    console.log(table(
      ['stdout', 'route', 'conns', 'req/s', 'p50 ms', 'p99 ms', 'max ms', 'errors', 'non-2xx', 'mayu cpu', 'client cpu', 'other cpu', 'log lines', 'commits', 'goal'],
      summary.render.map((r) => [r.mode, r.route, r.connections, r.rps, r.p50Ms, r.p99Ms, r.maxMs, r.errors + r.timeouts, r.non2xx, r.serverCpu, r.clientCpu, r.otherCpu,
        r.logLinesRead ?? '-', r.commitsBefore !== undefined ? `${r.commitsBefore}->${r.commitsAfter}` : '-', r.meetsGoal ? 'met' : 'MISSED']),
    ));
    console.log(`POST wrote no commit: ${summary.postWroteNoCommit}`);
  }
  if (downloads.length) {
    console.log(`\nfile download, ${FILE_MB} MiB file, ${CLIENTS} clients, ${SECONDS} s per row, rounds alternate (goal: median mayu >= ${GOAL.downloadRatio}x median nginx)`);
    console.log(table(
      ['server', 'round', 'MiB/s', 'complete', 'errors', 'server cpu', 'client cpu', 'other cpu'],
      downloads.map((d) => [d.server, d.round, d.MiBps, d.completeDownloads, d.errors, d.serverCpu, d.clientCpu, d.otherCpu]),
    ));
    if (ratio !== undefined) console.log(`median MiB/s: mayu ${downloadMedianMiBps!.mayu}, nginx ${downloadMedianMiBps!.nginx}; mayu/nginx = ${ratio}x (${summary.downloadMeetsGoal ? 'met' : 'MISSED'})`);
  }
  for (const p of profiles) {
    console.log(`\nmayu main-thread CPU self time, ${p.route}, ${p.connections} conns (devnull, --cpu-prof, ${p.rps} req/s):`);
    console.log(table(['where', '% of busy'], p.topSelfTime.map((x) => [x.where, x.pct])));
  }
}

await runBench(main, cleanup);
await sleep(0);

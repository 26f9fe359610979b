import { execFile, spawnSync } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { AttemptTiming, Route } from '../../test/helpers/storm-client.ts';
import { percentiles, type Percentiles } from './stats.ts';

// Where a storm's slow answers wait: mayu's own time per request (its request log's `ms`, from
// koa seeing the request to the answer), the client's phases (socket, connect, headers), mayu's
// GC and event-loop lag (its /metrics), the simulator's event-loop delay. The client's time minus
// mayu's is spent in the kernel's queues and in both event loops.

/** The storm route of a request log line (method + URL). */
function routeOf(method: string, url: string): Route | undefined {
  if (url.startsWith('/ipxebootscript?')) return 'ipxebootscript';
  if (url.startsWith('/first-stage-script/')) return 'first-stage-script';
  if (url === '/final-cloud-config.yaml') return 'final-cloud-config';
  if (method === 'HEAD' && url.startsWith('/images/')) return 'install-image-head';
  if (url.endsWith('/set_installed')) return 'set_installed';
  if (url.endsWith('/boot_complete')) return 'boot_complete';
  return undefined;
}

export interface ServerTimes {
  /** mayu's ms per answered request (2xx), per route. */
  answered: Record<string, Percentiles>;
  /** ... of refusals (429/503). */
  refused: Percentiles;
  /** Answers mayu took more than 1 s over, per route. */
  overOneSecond: Record<string, number>;
  /** Connections' first requests: ms from mayu's accept to its handling (the event loop's delay reading it). */
  sinceAccept: Percentiles & { over1s: number };
}

/** Reads mayu's request log (one JSON line per request). */
export async function serverTimes(logFile: string): Promise<ServerTimes> {
  const answered = new Map<string, number[]>();
  const refused: number[] = [];
  const sinceAccept: number[] = [];
  for await (const line of createInterface({ input: createReadStream(logFile) })) {
    if (!line.includes('"msg":"request"')) continue;
    const r = JSON.parse(line) as { method: string; url: string; status: number; ms: number; sinceAcceptMs?: number };
    if (r.sinceAcceptMs !== undefined) sinceAccept.push(r.sinceAcceptMs);
    const route = routeOf(r.method, r.url);
    if (!route) continue;
    if (r.status === 429 || r.status === 503) refused.push(r.ms);
    else if (r.status < 300) {
      const list = answered.get(route) ?? [];
      list.push(r.ms);
      answered.set(route, list);
    }
  }
  const out: ServerTimes = { answered: {}, refused: percentiles(refused), overOneSecond: {}, sinceAccept: { ...percentiles(sinceAccept), over1s: sinceAccept.filter((m) => m > 1000).length } };
  for (const [route, ms] of answered) {
    out.answered[route] = percentiles(ms);
    out.overOneSecond[route] = ms.filter((m) => m > 1000).length;
  }
  out.answered.all = percentiles([...answered.values()].flat());
  return out;
}

export interface PhaseSummary {
  attempts: number;
  newConnections: number;
  socketMs: Percentiles;
  connectMs: Percentiles;
  headersMs: Percentiles;
  /** Attempts over 1 s in all, and how many of them spent over 1 s connecting / before the headers. */
  slow: { count: number; connectOver1s: number; headersOver1s: number; socketOver1s: number; onNewConnection: number };
}

export function phaseSummary(timings: readonly AttemptTiming[]): PhaseSummary {
  const slow = timings.filter((t) => t.totalMs > 1000);
  return {
    attempts: timings.length,
    newConnections: timings.filter((t) => t.connectMs !== undefined).length,
    socketMs: percentiles(timings.map((t) => t.socketMs)),
    connectMs: percentiles(timings.flatMap((t) => (t.connectMs === undefined ? [] : [t.connectMs]))),
    headersMs: percentiles(timings.map((t) => t.headersMs)),
    slow: {
      count: slow.length,
      connectOver1s: slow.filter((t) => (t.connectMs ?? 0) > 1000).length,
      headersOver1s: slow.filter((t) => t.headersMs > 1000).length,
      socketOver1s: slow.filter((t) => t.socketMs > 1000).length,
      onNewConnection: slow.filter((t) => t.connectMs !== undefined).length,
    },
  };
}

/** mayu's GC time by kind and event-loop lag, from its /metrics (prom-client's defaults). */
export async function serverRuntime(url: string): Promise<{ gcSeconds: Record<string, number>; gcCount: Record<string, number>; eventLoopLag: Record<string, number> }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const gcSeconds: Record<string, number> = {};
  const gcCount: Record<string, number> = {};
  const eventLoopLag: Record<string, number> = {};
  for (const line of text.split('\n')) {
    let m = /^nodejs_gc_duration_seconds_(sum|count)\{kind="(\w+)"\} ([\d.e+-]+)$/.exec(line);
    if (m) (m[1] === 'sum' ? gcSeconds : gcCount)[m[2]!] = +Number(m[3]).toFixed(3);
    m = /^nodejs_eventloop_lag_(min|max|mean|p50|p90|p99)_seconds ([\d.e+-]+)$/.exec(line);
    if (m) eventLoopLag[m[1]!] = +Number(m[2]).toFixed(3);
  }
  return { gcSeconds, gcCount, eventLoopLag };
}

/** The kernel's TCP counters that tell a full accept queue (nstat; empty where it is missing). */
export function tcpCounters(): Record<string, number> {
  const names = ['TcpExtListenOverflows', 'TcpExtListenDrops', 'TcpExtTCPSynRetrans', 'TcpExtTCPTimeouts', 'TcpExtTCPReqQFullDoCookies'];
  const r = spawnSync('nstat', ['-az', ...names], { encoding: 'utf8' });
  const out: Record<string, number> = {};
  for (const line of (r.stdout ?? '').split('\n')) {
    const [name, value] = line.split(/\s+/);
    if (name && names.includes(name)) out[name.replace('TcpExt', '')] = Number(value);
  }
  return out;
}

/**
 * Samples mayu's side of the connections: the listen socket's accept queue (ss's Recv-Q) and its
 * accepted sockets holding request bytes mayu has not read (Recv-Q > 0): the most of each seen.
 */
export function sampleAcceptQueue(port: number, everyMs = 500): { stop(): { acceptQueueMax: number; atSecond: number; unreadSocketsMax: number; unreadAtSecond: number } } {
  let max = 0;
  let atSecond = 0;
  let unreadMax = 0;
  let unreadAt = 0;
  const t0 = performance.now();
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    execFile('ss', ['-tnH', 'state', 'all', `sport = :${port}`], { maxBuffer: 1 << 24 }, (err, stdout) => {
      busy = false;
      if (err) return;
      const now = +((performance.now() - t0) / 1000).toFixed(1);
      let unread = 0;
      for (const line of stdout.split('\n')) {
        const [state, recvQ] = line.trim().split(/\s+/);
        if (state === 'LISTEN' && Number(recvQ) > max) {
          max = Number(recvQ);
          atSecond = now;
        } else if (state === 'ESTAB' && Number(recvQ) > 0) unread++;
      }
      if (unread > unreadMax) {
        unreadMax = unread;
        unreadAt = now;
      }
    });
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      return { acceptQueueMax: max, atSecond, unreadSocketsMax: unreadMax, unreadAtSecond: unreadAt };
    },
  };
}

/**
 * mayu's memory every few seconds from its /metrics (heap, external buffers, RSS): the sample with
 * the highest RSS says what the peak is made of (RSS minus the main heap and external memory is
 * mostly the pack-merge worker's heap, code and freed-but-kept pages).
 */
export function sampleMemory(url: string, everyMs = 5000): { stop(): Record<string, number> | undefined } {
  let peak: Record<string, number> | undefined;
  let busy = false;
  const names = ['process_resident_memory_bytes', 'nodejs_heap_size_used_bytes', 'nodejs_heap_size_total_bytes', 'nodejs_external_memory_bytes'];
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    fetch(`${url}/metrics`).then((r) => r.text()).then((text) => {
      const sample: Record<string, number> = {};
      for (const line of text.split('\n')) {
        const [name, value] = line.split(' ');
        if (name && names.includes(name)) sample[name] = Math.round(Number(value) / 1024 / 1024);
      }
      if (!peak || (sample.process_resident_memory_bytes ?? 0) > (peak.process_resident_memory_bytes ?? 0)) peak = sample;
    }).catch(() => undefined).finally(() => (busy = false));
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      return peak;
    },
  };
}

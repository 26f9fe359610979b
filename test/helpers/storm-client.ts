import http from 'node:http';
import { hostData, macFor, reportTokenIn } from './mayu-process.ts';

// Simulated machines for storms: each one walks the whole 0.11 boot protocol (section 1) over
// loopback, retrying connection errors and 5xx, and logs every change the server acknowledged.
// The server may be killed and restarted on another port at any time: requests then wait for the
// Target to come back up and are retried against its new URL.

/** Where the machines send requests; the crash loop takes it down and brings it up again. */
export class Target {
  private readyPromise: Promise<void> = Promise.resolve();
  private markUp: (() => void) | undefined;

  constructor(public url: string) {}

  get isDown(): boolean {
    return this.markUp !== undefined;
  }

  /** Call before killing the server: requests failing from now on wait for up(). */
  down(): void {
    if (this.markUp) return;
    this.readyPromise = new Promise((r) => (this.markUp = r));
  }

  up(url: string): void {
    this.url = url;
    const markUp = this.markUp;
    this.markUp = undefined;
    markUp?.();
  }

  ready(): Promise<void> {
    return this.readyPromise;
  }

  /** An attempt to `url` got no answer (refused, reset, timed out); a FailoverTarget moves on. */
  unreachable(_url: string): void {}
}

/**
 * Several replicas' URLs: the machines use the first, and move to the next one when an attempt
 * gets no answer from the current one (as machines behind a VIP or a DNS name with several
 * addresses would). Records when it moved, for the failover time.
 */
export class FailoverTarget extends Target {
  private i = 0;
  readonly moves: { at: number; from: string; to: string }[] = [];

  constructor(readonly urls: string[]) {
    super(urls[0]!);
  }

  override unreachable(url: string): void {
    if (url !== this.url) return;
    this.i = (this.i + 1) % this.urls.length;
    this.moves.push({ at: performance.now(), from: url, to: this.urls[this.i]! });
    this.url = this.urls[this.i]!;
  }
}

/** Bounds the requests in flight, so latency measures the server, not a client-side queue. */
class Semaphore {
  private waiting: (() => void)[] = [];
  constructor(private free: number) {}
  async acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((r) => this.waiting.push(r));
  }
  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}

export type Route = 'ipxebootscript' | 'first-stage-script' | 'final-cloud-config' | 'install-image-head' | 'set_installed' | 'boot_complete';
export const ROUTES: readonly Route[] = ['ipxebootscript', 'first-stage-script', 'final-cloud-config', 'install-image-head', 'set_installed', 'boot_complete'];

/** A change the server acknowledged with a 2xx: it must be in git from then on. */
export interface Ack {
  serial: string;
  route: Route;
  /** Server generation (0 = first process) that answered. */
  generation: number;
}

/**
 * Real machines do not fire their requests back to back: they power on over some seconds, then
 * download a kernel, write an image, reboot. A paced storm starts each machine at a random moment
 * in `rampMs` and waits `afterMs[route]` (±50 %) after each answer; without it every machine
 * sends its next request the moment the previous one is answered (saturation).
 */
export interface StormPace {
  rampMs: number;
  afterMs: Partial<Record<Route, number>>;
}

/** Times of a real netboot, shortened about tenfold (netboot-lab.md measures the real ones). */
export const BOOT_PACE: StormPace = {
  rampMs: 10_000,
  afterMs: { 'ipxebootscript': 2000, 'first-stage-script': 200, 'final-cloud-config': 500, 'install-image-head': 3000, 'set_installed': 5000 },
};

export interface StormOptions {
  /** Machine timing; saturation (no pauses) when absent. */
  pace?: StormPace;
  machines: number;
  /** Requests in flight at most (also the agent's socket count). */
  concurrency: number;
  /** A new TCP connection for every request, as iPXE and busybox wget make (default: kept-alive sockets). */
  connectionPerRequest?: boolean;
  /** Attempts per request before the machine gives up (connection errors, 5xx, timeouts). */
  maxAttempts: number;
  /** Per-attempt timeout. */
  requestTimeoutMs: number;
  /** Called with every acknowledged change as it arrives (the crash loop schedules kills and checks from it). */
  onAck?: (ack: Ack) => void;
  /** The server generation, for the ack log (the crash loop bumps it on every restart). */
  generation?: () => number;
  /** A reason to stop every machine at its next attempt (the crash loop could not restart mayu). */
  stopReason?: () => string | undefined;
  /** Index of the first machine (serial storm-<index>, MAC macFor(index)); default 0. Storms over several replicas give each its own. */
  firstIndex?: number;
}

export interface StormResult {
  seconds: number;
  /** Successful attempt latencies in ms, per route. */
  latencies: Map<Route, number[]>;
  acks: Ack[];
  /** Attempts that were retried, per cause. */
  retries: Map<string, number>;
  /** 2xx answers, each with when it arrived (performance.now()) and the URL that gave it. */
  answered?: { at: number; url: string }[];
  /** The first answer body of every retried 5xx cause (what the server said). */
  errorSamples: Map<string, string>;
  /** Machines that could not finish: serial → reason. */
  failures: Map<string, string>;
  successes: number;
  /** 429/503 answers with Retry-After (the machine waited as told, then asked again), per route and status. */
  refusals: Map<string, number>;
  /** Latencies in ms of those refusals: answered requests too. */
  refusalLatencies: number[];
  /** Timings of every answered attempt (successes and refusals), per route. */
  timings: Map<Route, AttemptTiming[]>;
}

export const serialFor = (i: number) => `storm-${String(i).padStart(6, '0')}`;
/** The index of a storm serial (its MAC is macFor(index)). */
export const indexOf = (serial: string) => Number(serial.slice('storm-'.length));
/** What the installed OS reports in boot_complete (mayuctl sends a whole Host object). */
export const BOOT_COMPLETE_BODY = { CoreOSVersion: 'x', State: 'unknown' };

interface Reply {
  status: number;
  body: string;
  /** Seconds of a Retry-After header, if the answer had one. */
  retryAfter?: number;
  timing: AttemptTiming;
}

/**
 * Where one attempt's time went, client side (ms from the attempt's start): waiting for a socket
 * of the agent, connecting one (new sockets only), then request to response headers (the server
 * plus both event loops). A slow attempt's share tells a server that answers late from a
 * connection that waited to be accepted or a simulator that reads late.
 */
export interface AttemptTiming {
  socketMs: number;
  /** undefined: a kept-alive socket was reused. */
  connectMs?: number;
  headersMs: number;
  totalMs: number;
}

/** Refusals a machine sits out before it gives up (each waits Retry-After: minutes in all). */
const MAX_REFUSALS = 200;

/** Runs `machines` simulated machines concurrently to the end of the protocol. */
export async function runStorm(target: Target, opts: StormOptions): Promise<StormResult> {
  const agent = new http.Agent({ keepAlive: !opts.connectionPerRequest, maxSockets: opts.concurrency });
  const slots = new Semaphore(opts.concurrency);
  const latencies = new Map<Route, number[]>(ROUTES.map((r) => [r, []]));
  const retries = new Map<string, number>();
  const failures = new Map<string, string>();
  const errorSamples = new Map<string, string>();
  const acks: Ack[] = [];
  const refusals = new Map<string, number>();
  const refusalLatencies: number[] = [];
  const timings = new Map<Route, AttemptTiming[]>(ROUTES.map((r) => [r, []]));
  const answered: { at: number; url: string }[] = [];
  let successes = 0;

  const send = (method: string, url: string, body?: string, auth?: string, extra?: Record<string, string>): Promise<Reply> =>
    new Promise((resolve, reject) => {
      const headers: Record<string, string | number> = { ...extra, ...(body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }) };
      if (auth) headers.authorization = auth;
      const t0 = performance.now();
      let socketAt = t0;
      let connectedAt: number | undefined;
      const req = http.request(url, { method, agent, headers }, (res) => {
        const headersAt = performance.now();
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        const retryAfter = Number(res.headers['retry-after']);
        res.on('end', () => {
          const end = performance.now();
          const timing: AttemptTiming = {
            socketMs: socketAt - t0,
            ...(connectedAt === undefined ? {} : { connectMs: connectedAt - socketAt }),
            headersMs: headersAt - (connectedAt ?? socketAt),
            totalMs: end - t0,
          };
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), ...(retryAfter >= 0 ? { retryAfter } : {}), timing });
        });
        res.on('error', reject);
      });
      req.once('socket', (socket) => {
        socketAt = performance.now();
        if (socket.connecting) socket.once('connect', () => (connectedAt = performance.now()));
      });
      req.setTimeout(opts.requestTimeoutMs, () => req.destroy(new Error(`timeout after ${opts.requestTimeoutMs} ms`)));
      req.on('error', reject);
      req.end(body);
    });

  /** One protocol request, retried until it answers `expect` (or a non-retryable status). */
  const call = async (route: Route, serial: string, method: string, pathName: string, expect: number, body?: string, auth?: string, extra?: Record<string, string>): Promise<Reply> => {
    let refused = 0;
    for (let attempt = 1; ; attempt++) {
      const stop = opts.stopReason?.();
      if (stop) throw new Error(`${method} ${pathName}: stopped: ${stop}`);
      await slots.acquire();
      // Read together: the URL and the generation of the server this attempt goes to.
      const generation = opts.generation?.() ?? 0;
      const url = `${target.url}${pathName}`;
      const t0 = performance.now();
      let reply: Reply | undefined;
      let cause: string;
      try {
        reply = await send(method, url, body, auth, extra);
        cause = `HTTP ${reply.status}`;
      } catch (err) {
        cause = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      } finally {
        slots.release();
      }
      if (reply && (reply.status === expect || reply.status === 429 || reply.status === 503)) timings.get(route)!.push(reply.timing);
      if (reply && reply.status === expect) {
        const t1 = performance.now();
        latencies.get(route)!.push(t1 - t0);
        answered.push({ at: t1, url });
        if (route !== 'ipxebootscript' && route !== 'install-image-head') {
          const ack = { serial, route, generation };
          acks.push(ack);
          opts.onAck?.(ack);
        }
        successes++;
        return reply;
      }
      // Told to come back later (rate limit, overload): wait what the server says plus up to half
      // as much again, as the installer and iPXE scripts do; not a failed attempt.
      if (reply && (reply.status === 429 || reply.status === 503) && reply.retryAfter !== undefined) {
        refusalLatencies.push(performance.now() - t0);
        refusals.set(`${route} ${reply.status}`, (refusals.get(`${route} ${reply.status}`) ?? 0) + 1);
        if (++refused > MAX_REFUSALS) throw new Error(`${method} ${pathName}: refused ${refused} times, last: ${reply.status} ${reply.body.slice(0, 200)}`);
        attempt--;
        await sleep(reply.retryAfter * 1000 * (1 + Math.random() / 2));
        continue;
      }
      if (!reply) target.unreachable(url.slice(0, url.length - pathName.length));
      if (reply && reply.status < 500) throw new Error(`${method} ${pathName}: ${reply.status} ${reply.body.slice(0, 200)}`);
      retries.set(`${route} ${cause}`, (retries.get(`${route} ${cause}`) ?? 0) + 1);
      if (reply && !errorSamples.has(`${route} ${cause}`)) errorSamples.set(`${route} ${cause}`, `${serial} (server #${generation}): ${reply.body.slice(0, 300)}`);
      if (attempt >= opts.maxAttempts) throw new Error(`${method} ${pathName}: gave up after ${attempt} attempts, last: ${cause}`);
      // A dead server: wait for its successor. Otherwise a short backoff with jitter.
      if (target.isDown) await target.ready();
      else await sleep(Math.min(500, 5 * 2 ** Math.min(attempt, 7)) * (0.5 + Math.random()));
    }
  };

  const pause = async (route: Route) => {
    const ms = opts.pace?.afterMs[route];
    if (ms) await sleep(ms * (0.5 + Math.random()));
  };
  const step = async (route: Route, serial: string, method: string, pathName: string, expect: number, body?: string, auth?: string, extra?: Record<string, string>) => {
    const reply = await call(route, serial, method, pathName, expect, body, auth, extra);
    await pause(route);
    return reply;
  };

  const machine = async (i: number): Promise<void> => {
    const serial = serialFor(i);
    try {
      if (opts.pace) await sleep(Math.random() * opts.pace.rampMs);
      // The boot script as iPXE asks for it after mayu's chain script: with its identity.
      await step('ipxebootscript', serial, 'GET', `/ipxebootscript?serial=${serial}&mac=${macFor(i).replaceAll(':', '-')}&uuid=`, 200);
      // Reports carry the report token mayu rendered into this machine's first-stage script.
      const script = await step('first-stage-script', serial, 'GET', `/first-stage-script/${serial}`, 200);
      const auth = `Bearer ${reportTokenIn(script.body)}`;
      await step('final-cloud-config', serial, 'POST', '/final-cloud-config.yaml', 200, JSON.stringify(hostData(serial, macFor(i))));
      await step('install-image-head', serial, 'HEAD', `/images/${serial}/install_image.bin.bz2`, 200);
      await step('set_installed', serial, 'PUT', `/admin/host/${serial}/set_installed`, 202, undefined, auth);
      // With a boot id, as the shipped OS sends it: a retry after a timeout is the same report.
      await step('boot_complete', serial, 'PUT', `/admin/host/${serial}/boot_complete`, 202, JSON.stringify(BOOT_COMPLETE_BODY), auth, { 'x-mayu-boot-id': `boot-${i}` });
    } catch (err) {
      failures.set(serial, (err as Error).message);
    }
  };

  const t0 = performance.now();
  const first = opts.firstIndex ?? 0;
  await Promise.all(Array.from({ length: opts.machines }, (_, i) => machine(first + i)));
  const seconds = (performance.now() - t0) / 1000;
  agent.destroy();
  return { seconds, latencies, acks, retries, errorSamples, failures, successes, refusals, refusalLatencies, timings, answered };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** GET a JSON document (after a storm: one request, no retry). */
export async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

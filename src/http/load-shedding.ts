import type { Context, Middleware } from 'koa';
import { performance as perf } from 'node:perf_hooks';
import { HttpError } from './errors.ts';
import type { RegistrationLimiter } from './rate-limit.ts';

// Overload protection (README "Limits and overload"). Requests in flight and the store's writer
// queue are bounded: past the lower bounds a NEW registration (a serial mayu does not know) is
// answered 503 at once, while the requests of known hosts (boot scripts, reports, their final
// config) are admitted up to a higher bound, so machines half-way through an install finish
// first. Refusals are cheap (nothing read from the store, nothing written) and carry Retry-After,
// also in the status line's reason phrase and the body: busybox wget, which the installer uses,
// prints only the status line of a refused request (README "Machines retry").

export interface OverloadLimits {
  /** New registrations are refused while more requests than this are in flight. */
  maxInFlightNew: number;
  /** ... or while more changes than this wait to become durable (the store's writer queue). */
  maxWriteQueueNew: number;
  /** Every counted request is refused past this: known hosts' requests keep priority up to here. */
  maxInFlight: number;
  /** A 503's Retry-After is drawn between this and twice this (spreads the retries). */
  retryAfterSeconds: number;
  /**
   * ... or while the event loop runs this many ms late (every answer waits that long), or changes
   * take this many ms to become durable (recent average): the queue's length alone does not say
   * how fast it drains on a CPU shared with others. 0 turns either off.
   */
  maxLagMsNew: number;
  maxCommitMsNew: number;
  /**
   * ... or while the event loop was busy more than this share of the recent time (0..1; 0 turns
   * it off). A saturated loop queues new connections in the kernel, where no in-flight count or
   * quick 503 reaches them (a 10 000-machine storm's first contacts waited there up to 60 s):
   * new machines are let in only while there is room for their later requests.
   */
  maxBusyNew?: number;
}

export interface LoadGateDeps {
  limits: OverloadLimits;
  /** Absent: no rate limit on registrations. */
  limiter?: RegistrationLimiter;
  writeQueueDepth: () => number;
  /** [0, 1); injected for tests. */
  random?: () => number;
}

/**
 * Requests that do not count: long-lived ones (event streams, etcd watches, file downloads of
 * any size), probes and the dashboard's files. What counts is the work that competes for the
 * event loop and the store.
 */
function counted(ctx: Context): boolean {
  const p = ctx.path;
  if (p.startsWith('/images/') || p.startsWith('/uefi/') || p.startsWith('/ui/') || p.startsWith('/etcd/')) return false;
  return !(p === '/admin/events' || p === '/healthz' || p === '/readyz' || p === '/metrics' || p === '/hostinfo-helper');
}

/** How often the event loop's lateness is sampled. */
const LAG_SAMPLE_MS = 50;

export class LoadGate {
  private inFlightNow = 0;
  private readonly random: () => number;
  /** Recent event-loop lateness: the worst sample, fading by 30 % a sample. */
  private lagMs = 0;
  /** Recent time for a change to become durable (moving average). */
  private commitMs = 0;
  /** Recent share of time the event loop was busy (moving average of 50 ms samples, ~0.5 s). */
  private busy = 0;
  private lastCommitAt = 0;
  private sampler: NodeJS.Timeout | undefined;

  constructor(private readonly deps: LoadGateDeps) {
    this.random = deps.random ?? Math.random;
  }

  /** Starts sampling the event loop's lateness (a timer that does not keep the process alive). */
  start(): void {
    const { limits } = this.deps;
    if (this.sampler || (limits.maxLagMsNew <= 0 && limits.maxCommitMsNew <= 0 && !(limits.maxBusyNew! > 0))) return;
    let expected = performance.now() + LAG_SAMPLE_MS;
    let elu = perf.eventLoopUtilization();
    this.sampler = setInterval(() => {
      const now = performance.now();
      const eluNow = perf.eventLoopUtilization();
      this.busy = this.busy * 0.9 + perf.eventLoopUtilization(eluNow, elu).utilization * 0.1;
      elu = eluNow;
      this.lagMs = Math.max(now - expected, this.lagMs * 0.7);
      expected = now + LAG_SAMPLE_MS;
      // No change stored for a while: the last slow ones say nothing about now (and refused
      // registrations must not keep the average up forever).
      if (now - this.lastCommitAt > 500) this.commitMs *= 0.7;
    }, LAG_SAMPLE_MS).unref();
  }

  close(): void {
    clearInterval(this.sampler);
    this.sampler = undefined;
  }

  /** A change took this long from the request until durable (MayuService's observeCommit). */
  observeCommit(seconds: number): void {
    this.commitMs = this.commitMs * 0.9 + seconds * 1000 * 0.1;
    this.lastCommitAt = performance.now();
  }

  get inFlight(): number {
    return this.inFlightNow;
  }

  /** Counts requests in flight; past maxInFlight, refuses every counted request at once. */
  middleware(): Middleware {
    return async (ctx, next) => {
      if (!counted(ctx)) return next();
      if (this.inFlightNow >= this.deps.limits.maxInFlight) {
        refuse(ctx, 503, `mayu is overloaded: ${this.inFlightNow} requests in flight (limit ${this.deps.limits.maxInFlight}); nothing was done`, this.retryAfter());
        return;
      }
      this.inFlightNow++;
      try {
        await next();
      } finally {
        this.inFlightNow--;
      }
    };
  }

  /**
   * A registration of a serial mayu does not know, from `source`: throws a 503 (overload) or a
   * 429 (rate limit) to refuse it; nothing has been read or written yet.
   */
  admitNewHost(source: string): void {
    const { limits } = this.deps;
    // The request asking counts itself among those in flight.
    const inFlight = this.inFlightNow - 1;
    if (inFlight >= limits.maxInFlightNew) {
      throw refusal(503, `mayu is busy: ${inFlight} requests in flight (new machines wait above ${limits.maxInFlightNew}); this machine was not registered`, this.retryAfter());
    }
    const depth = this.deps.writeQueueDepth();
    if (depth >= limits.maxWriteQueueNew) {
      throw refusal(503, `mayu is busy: ${depth} changes waiting to be stored (new machines wait above ${limits.maxWriteQueueNew}); this machine was not registered`, this.retryAfter());
    }
    if (limits.maxLagMsNew > 0 && this.lagMs >= limits.maxLagMsNew) {
      throw refusal(503, `mayu is busy: answers run ${Math.round(this.lagMs)} ms late (new machines wait above ${limits.maxLagMsNew} ms); this machine was not registered`, this.retryAfter());
    }
    if (limits.maxBusyNew! > 0 && this.busy >= limits.maxBusyNew!) {
      throw refusal(503, `mayu is busy: its event loop was busy ${Math.round(this.busy * 100)} % of the time (new machines wait above ${Math.round(limits.maxBusyNew! * 100)} %); this machine was not registered`, this.retryAfter());
    }
    if (limits.maxCommitMsNew > 0 && this.commitMs >= limits.maxCommitMsNew) {
      throw refusal(503, `mayu is busy: changes take ${Math.round(this.commitMs)} ms to be stored (new machines wait above ${limits.maxCommitMsNew} ms); this machine was not registered`, this.retryAfter());
    }
    const verdict = this.deps.limiter?.take(source);
    if (verdict && !verdict.ok) {
      const what = verdict.scope === 'source' ? `from ${source}` : 'from all sources';
      // The bucket's own wait, plus up to half of it again: refused machines do not come back together.
      const seconds = Math.ceil(verdict.retryAfterSeconds * (1 + this.random() / 2));
      throw refusal(429, `too many new machines ${what}: limit ${verdict.limit.rate}/s, burst ${verdict.limit.burst}; this machine was not registered`, seconds);
    }
  }

  private retryAfter(): number {
    const base = this.deps.limits.retryAfterSeconds;
    return base + Math.floor(this.random() * (base + 1));
  }
}

const REASON = { 429: 'Too Many Requests', 503: 'Service Unavailable' } as const;

function refusal(status: 429 | 503, message: string, seconds: number): HttpError {
  return new RefusalError(status, `${message}; retry after ${seconds} s\n`, seconds);
}

/** A 429/503 refusal: the app's error handler sends its headers and reason phrase. */
export class RefusalError extends HttpError {
  constructor(status: 429 | 503, message: string, readonly retryAfterSeconds: number) {
    super(status, message, { 'Retry-After': String(retryAfterSeconds) });
  }

  /** "Service Unavailable, retry after 7 s": what busybox wget prints of a refused request. */
  get reasonPhrase(): string {
    return `${REASON[this.status as 429 | 503]}, retry after ${this.retryAfterSeconds} s`;
  }
}

function refuse(ctx: Context, status: 429 | 503, message: string, seconds: number): void {
  const err = refusal(status, message, seconds) as RefusalError;
  ctx.status = status;
  ctx.set(err.headers);
  ctx.message = err.reasonPhrase;
  ctx.type = 'text/plain; charset=utf-8';
  ctx.body = err.message;
}

// Token buckets for new registrations (README "Limits and overload"): one per source address and
// one for everybody. Only a registration of a serial mayu does not know takes a token, so the
// machines already known (reports, boot scripts, their final config) are never counted.

/** `rate` tokens per second up to `burst`; rate 0 turns the bucket off (always admits). */
export interface BucketSpec {
  rate: number;
  burst: number;
}

/** A token bucket refilled continuously; time in milliseconds from the clock passed in. */
export class TokenBucket {
  private tokens: number;
  private at: number;

  constructor(private readonly spec: BucketSpec, now: number) {
    this.tokens = spec.burst;
    this.at = now;
  }

  private refill(now: number): void {
    if (now > this.at) this.tokens = Math.min(this.spec.burst, this.tokens + ((now - this.at) / 1000) * this.spec.rate);
    this.at = now;
  }

  /** Takes one token, or says in how many ms one will be there. */
  take(now: number): { ok: true } | { ok: false; waitMs: number } {
    this.refill(now);
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return { ok: true };
    }
    return { ok: false, waitMs: ((1 - this.tokens) / this.spec.rate) * 1000 };
  }

  /** Gives back a token taken for a registration another bucket then refused. */
  giveBack(): void {
    this.tokens = Math.min(this.spec.burst, this.tokens + 1);
  }

  /** Full again: forgetting it changes nothing (a new bucket starts full). */
  isFull(now: number): boolean {
    this.refill(now);
    return this.tokens >= this.spec.burst;
  }
}

export interface RegistrationLimits {
  perSource: BucketSpec;
  overall: BucketSpec;
  /** Source addresses remembered at most; full buckets are forgotten first. */
  maxSources?: number;
  /** Sources without a bucket of their own (the overall bucket still counts them). */
  exempt?: readonly string[];
}

export type LimitVerdict = { ok: true } | { ok: false; scope: 'source' | 'overall'; retryAfterSeconds: number; limit: BucketSpec };

/** The registration limits of one server; `now` in ms (injected for tests). */
export class RegistrationLimiter {
  private readonly sources = new Map<string, TokenBucket>();
  private readonly overall: TokenBucket | undefined;
  private readonly maxSources: number;

  constructor(private readonly limits: RegistrationLimits, private readonly now: () => number = () => performance.now()) {
    this.overall = limits.overall.rate > 0 ? new TokenBucket(limits.overall, now()) : undefined;
    this.maxSources = limits.maxSources ?? 10_000;
  }

  /** One new registration from `source`: a token from its bucket and from the overall one. */
  take(source: string): LimitVerdict {
    const now = this.now();
    let bucket: TokenBucket | undefined;
    if (this.limits.perSource.rate > 0 && !this.limits.exempt?.includes(source)) {
      bucket = this.sources.get(source);
      if (!bucket) {
        this.forgetSome(now);
        bucket = new TokenBucket(this.limits.perSource, now);
        this.sources.set(source, bucket);
      }
      const own = bucket.take(now);
      if (!own.ok) return { ok: false, scope: 'source', retryAfterSeconds: seconds(own.waitMs), limit: this.limits.perSource };
    }
    const all = this.overall?.take(now) ?? { ok: true as const };
    if (!all.ok) {
      // Not this source's fault: its token stays its own.
      bucket?.giveBack();
      return { ok: false, scope: 'overall', retryAfterSeconds: seconds(all.waitMs), limit: this.limits.overall };
    }
    return { ok: true };
  }

  /** Keeps the map bounded: drop full buckets, then the oldest (the overall bucket still holds). */
  private forgetSome(now: number): void {
    if (this.sources.size < this.maxSources) return;
    for (const [source, b] of this.sources) if (b.isFull(now)) this.sources.delete(source);
    for (const source of this.sources.keys()) {
      if (this.sources.size < this.maxSources) break;
      this.sources.delete(source);
    }
  }
}

/** Whole seconds for Retry-After: at least 1. */
const seconds = (ms: number) => Math.max(1, Math.ceil(ms / 1000));

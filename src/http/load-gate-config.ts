import type { LimitsConfig } from '../config/schema.ts';
import { LoadGate } from './load-shedding.ts';
import { RegistrationLimiter } from './rate-limit.ts';

/** The server's LoadGate from config.yaml's `limits:` (README "Limits and overload"). */
export function loadGateFor(limits: LimitsConfig, writeQueueDepth: () => number): LoadGate {
  const perSource = limits.new_hosts_per_source;
  const overall = limits.new_hosts;
  const limiter = perSource.rate > 0 || overall.rate > 0 ? new RegistrationLimiter({ perSource, overall, exempt: limits.exempt_sources }) : undefined;
  return new LoadGate({
    limits: {
      maxInFlightNew: limits.max_in_flight_new,
      maxWriteQueueNew: limits.max_write_queue_new,
      maxInFlight: limits.max_in_flight,
      retryAfterSeconds: limits.retry_after_seconds,
      maxLagMsNew: limits.max_lag_ms_new,
      maxCommitMsNew: limits.max_commit_ms_new,
      maxBusyNew: limits.max_busy_new,
    },
    limiter,
    writeQueueDepth,
  });
}

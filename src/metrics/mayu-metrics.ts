// Prometheus metrics (README "Metrics"). The registry comes from the composition root, never
// prom-client's global one, so two servers in one process (tests) never share series. Host counts
// and dnsmasq figures are read at scrape time from their owners instead of being kept in step.
import { Counter, Gauge, Histogram, collectDefaultMetrics, type Registry } from 'prom-client';
import { HOST_STATES, type Host } from '../core/host.ts';
import { FAILURE_STAGES } from '../core/install-failures.ts';
import type { AuditPushStatus } from '../store/audit-push.ts';

export interface MetricSources {
  /** The live host records (read-only scan). */
  hosts: () => Iterable<Readonly<Host>>;
  /** Profile names from the config, so an empty profile still shows 0. */
  profileNames: readonly string[];
  writeQueueDepth: () => number;
  eventSubscribers: () => number;
  /** Present only when mayu runs dnsmasq: its restarts so far and whether it serves now. */
  dnsmasq?: () => { restarts: number; up: boolean };
  /** Changes made outside mayu that it refuses now (git mode): one per commit or file. */
  refusedOutsideChanges?: () => number;
  /** Present only when an audit push is configured (git mode): its status now. */
  auditPush?: () => Pick<AuditPushStatus, 'state' | 'consecutiveFailures' | 'lastSuccessAt'> | undefined;
  /** Stuck installs now, per state (README "Stuck installs"). */
  stuckHosts?: () => Map<string, number>;
  /** The cluster directory's disk now (free space sampled at scrape) and the writes refused since start. */
  storage?: () => {
    freeBytes: number | null;
    minFreeBytes: number | null;
    writesFailing: boolean;
    refused: { new_host: number; not_stored: number };
  };
}

/** What the parts of mayu report into; each call is cheap (no I/O). */
export interface MetricsRecorder {
  request(method: string, route: string, status: number): void;
  commit(seconds: number): void;
  batchWritten(size: number): void;
  /** An install failure of this stage was recorded. */
  installFailure(stage: string): void;
  /** A host changed outside mayu (an operator's commit, a hand edit) was taken. */
  outsideChangeAdopted(): void;
}

export function createMetrics(registry: Registry, sources: MetricSources): MetricsRecorder {
  const registers = [registry];
  collectDefaultMetrics({ register: registry });

  new Gauge({
    name: 'mayu_hosts',
    help: 'Known hosts per state.',
    labelNames: ['state'],
    registers,
    collect() {
      const counts = new Map<string, number>(HOST_STATES.map((s) => [s, 0]));
      for (const h of sources.hosts()) counts.set(h.State, (counts.get(h.State) ?? 0) + 1);
      this.reset();
      for (const [state, n] of counts) this.set({ state }, n);
    },
  });
  new Gauge({
    name: 'mayu_hosts_by_profile',
    help: 'Known hosts per profile.',
    labelNames: ['profile'],
    registers,
    collect() {
      const counts = new Map<string, number>(sources.profileNames.map((p) => [p, 0]));
      for (const h of sources.hosts()) counts.set(h.Profile ?? '', (counts.get(h.Profile ?? '') ?? 0) + 1);
      this.reset();
      for (const [profile, n] of counts) this.set({ profile }, n);
    },
  });
  const requests = new Counter({
    name: 'mayu_http_requests_total',
    help: 'HTTP requests answered, by method, route pattern (not the raw URL) and status.',
    labelNames: ['method', 'route', 'status'],
    registers,
  });
  const commitSeconds = new Histogram({
    name: 'mayu_commit_duration_seconds',
    help: 'Time from handing a change to the store until it is durable (all its commits).',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers,
  });
  const batchSize = new Histogram({
    name: 'mayu_commit_batch_size',
    help: 'Changes (commits in git mode) written together in one batch (group commit).',
    buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500],
    registers,
  });
  new Gauge({
    name: 'mayu_write_queue_depth',
    help: 'Changes applied in memory and not yet durable (batch being written plus the queue).',
    registers,
    collect() {
      this.set(sources.writeQueueDepth());
    },
  });
  new Gauge({
    name: 'mayu_event_subscribers',
    help: 'Open /admin/events streams.',
    registers,
    collect() {
      this.set(sources.eventSubscribers());
    },
  });
  const installFailures = new Counter({
    name: 'mayu_install_failures_total',
    help: 'Install failures reported by installers and recorded, by stage (since mayu started).',
    labelNames: ['stage'],
    registers,
  });
  // Every stage from the start: a rate() over a series that appears only at its first failure misses it.
  for (const stage of FAILURE_STAGES) installFailures.inc({ stage }, 0);
  const dnsmasq = sources.dnsmasq;
  if (dnsmasq) {
    new Counter({
      name: 'mayu_dnsmasq_restarts_total',
      help: 'Times the supervised dnsmasq died and was restarted.',
      registers,
      collect() {
        this.reset();
        this.inc(dnsmasq().restarts);
      },
    });
    new Gauge({
      name: 'mayu_dnsmasq_up',
      help: '1 while dnsmasq runs and has read its hostsfile, else 0.',
      registers,
      collect() {
        this.set(dnsmasq().up ? 1 : 0);
      },
    });
  }

  const adopted = new Counter({
    name: 'mayu_outside_changes_adopted_total',
    help: "Hosts changed outside mayu (operators' commits, hand-edited conf.json) that mayu took.",
    registers,
  });
  const refused = sources.refusedOutsideChanges;
  if (refused) {
    new Gauge({
      name: 'mayu_outside_changes_refused',
      help: 'Changes made outside mayu that it refuses now (a commit at the branch, hand-edited files): 0 when none.',
      registers,
      collect() {
        this.set(refused());
      },
    });
  }

  const auditPush = sources.auditPush;
  if (auditPush) {
    new Gauge({
      name: 'mayu_audit_push_failing',
      help: '1 from a failed audit push until one succeeds (retries included), else 0. Provisioning never waits for it.',
      registers,
      collect() {
        this.set((auditPush()?.consecutiveFailures ?? 0) > 0 ? 1 : 0);
      },
    });
    new Gauge({
      name: 'mayu_audit_push_consecutive_failures',
      help: 'Audit pushes failed in a row since the last success (0 when the last one worked).',
      registers,
      collect() {
        this.set(auditPush()?.consecutiveFailures ?? 0);
      },
    });
    new Gauge({
      name: 'mayu_audit_push_last_success_timestamp_seconds',
      help: 'Unix time of the last successful audit push; 0 before the first since mayu started.',
      registers,
      collect() {
        const at = auditPush()?.lastSuccessAt;
        this.set(at === undefined ? 0 : Date.parse(at) / 1000);
      },
    });
  }

  const stuckHosts = sources.stuckHosts;
  if (stuckHosts) {
    new Gauge({
      name: 'mayu_hosts_stuck',
      help: 'Hosts in installing, or configured after a reinstall request, for longer than stuck_installs.after_seconds.',
      labelNames: ['state'],
      registers,
      collect() {
        this.reset();
        for (const [state, n] of stuckHosts()) this.set({ state }, n);
      },
    });
  }

  const storage = sources.storage;
  if (storage) {
    new Gauge({
      name: 'mayu_store_free_bytes',
      help: 'Free bytes on the cluster directory\'s file system (statfs, space an unprivileged writer may use).',
      registers,
      collect() {
        const free = storage().freeBytes;
        if (free !== null) this.set(free);
      },
    });
    new Gauge({
      name: 'mayu_store_min_free_bytes',
      help: 'Free bytes below which new hosts are refused (config storage.min_free_bytes / min_free_percent).',
      registers,
      collect() {
        const min = storage().minFreeBytes;
        if (min !== null) this.set(min);
      },
    });
    new Gauge({
      name: 'mayu_store_writes_failing',
      help: '1 while changes cannot be stored (a write failed and none has succeeded since), else 0.',
      registers,
      collect() {
        this.set(storage().writesFailing ? 1 : 0);
      },
    });
    new Counter({
      name: 'mayu_store_writes_refused_total',
      help: 'Changes answered 507 since start: new_host (free space below the threshold), not_stored (the disk refused the write).',
      labelNames: ['reason'],
      registers,
      collect() {
        const r = storage().refused;
        this.reset();
        this.inc({ reason: 'new_host' }, r.new_host);
        this.inc({ reason: 'not_stored' }, r.not_stored);
      },
    });
  }

  return {
    request: (method, route, status) => requests.inc({ method, route, status: String(status) }),
    commit: (seconds) => commitSeconds.observe(seconds),
    batchWritten: (size) => batchSize.observe(size),
    installFailure: (stage) => installFailures.inc({ stage }),
    outsideChangeAdopted: () => adopted.inc(),
  };
}

// Watches for stuck installs (README "Stuck installs"): keeps, in memory, since when each host
// in `installing` or `configured` has been in that state, and flags the ones past the threshold
// once per episode with an event. Since-times come from the host changes as they happen and, for
// hosts already waiting at start, from their git history (commit times): nothing is stored, so
// conf.json keeps 0.11's format. The rules themselves are in core/stuck.ts.
import type { HostState } from '../core/host.ts';
import { checkIntervalMs, entryFromHistory, nextEntry, stuckHost, stuckMessage, type StateAtCommit, type StateEntry, type StuckHost } from '../core/stuck.ts';
import type { HostStore } from '../store/store.ts';
import type { HostChangeEvent } from './mayu-service.ts';

const CANDIDATES: readonly HostState[] = ['installing', 'configured'];

export interface StuckWatchDeps {
  store: Pick<HostStore, 'get' | 'scan' | 'history' | 'confAt'>;
  /** Threshold: a host longer than this in its state is stuck. */
  afterMs: number;
  now?: () => number;
  /** Publishes the episode's event (the /admin/events hub). */
  publish: (event: HostChangeEvent) => void;
  /** Told about each new episode (the log). */
  onStuck?: (stuck: StuckHost) => void;
  /** Told when the since-times of hosts waiting at start could not be read from history. */
  onRebuildError?: (err: Error) => void;
}

export class StuckWatch {
  /** Hosts in a candidate state: since when, and from which state. */
  private readonly entries = new Map<string, StateEntry>();
  /** Entries whose earlier state is not known (no history to read). */
  private readonly fromUnknown = new Set<string>();
  /** Hosts whose current episode was announced. */
  private readonly flagged = new Set<string>();
  /** Hosts changed since start: their entry comes from the change, never from the rebuild. */
  private readonly touched = new Set<string>();
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;
  private rebuilding: Promise<void> | undefined;

  constructor(private readonly deps: StuckWatchDeps) {
    this.now = deps.now ?? Date.now;
  }

  /** Rebuilds the since-times of hosts waiting now (in the background), then checks periodically. */
  start(): void {
    this.rebuilding = this.rebuild().catch((err: Error) => this.deps.onRebuildError?.(err));
    this.timer = setInterval(() => this.check(), checkIntervalMs(this.deps.afterMs));
    this.timer.unref();
  }

  /** Resolves once the since-times of hosts waiting at start are known. */
  ready(): Promise<void> {
    return this.rebuilding ?? Promise.resolve();
  }

  /** A durable host change (every event the hub publishes, ours excepted). */
  observe(e: HostChangeEvent): void {
    if (e.stuck) return;
    this.touched.add(e.serial);
    const prev = this.entries.get(e.serial);
    if (e.deleted || !CANDIDATES.includes(e.to)) {
      this.forget(e.serial);
      return;
    }
    const next = nextEntry(prev, e.from, e.to, this.now());
    if (next !== prev) {
      this.forget(e.serial);
      this.entries.set(e.serial, next);
    }
  }

  /** Announces the hosts that became stuck since the last look. */
  check(): void {
    const now = this.now();
    for (const [serial, entry] of this.entries) {
      if (this.flagged.has(serial)) continue;
      const stuck = stuckHost(serial, entry, now, this.deps.afterMs, !this.fromUnknown.has(serial));
      if (!stuck) continue;
      const host = this.deps.store.get(serial);
      if (!host) continue;
      this.flagged.add(serial);
      this.deps.onStuck?.(stuck);
      this.deps.publish({ serial, from: entry.state, to: entry.state, messages: [stuckMessage(stuck)], host, stuck });
    }
  }

  /** The hosts stuck now, by serial (GET /admin/stuck, mayuctl list --stuck, the dashboard). */
  list(): StuckHost[] {
    const now = this.now();
    const out: StuckHost[] = [];
    for (const [serial, entry] of this.entries) {
      const stuck = stuckHost(serial, entry, now, this.deps.afterMs, !this.fromUnknown.has(serial));
      if (stuck) out.push(stuck);
    }
    return out.sort((a, b) => (a.Serial < b.Serial ? -1 : a.Serial > b.Serial ? 1 : 0));
  }

  /** Stuck hosts per candidate state (the metric), 0 included. */
  counts(): Map<HostState, number> {
    const counts = new Map<HostState, number>(CANDIDATES.map((s) => [s, 0]));
    for (const s of this.list()) counts.set(s.State, (counts.get(s.State) ?? 0) + 1);
    return counts;
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
  }

  private forget(serial: string): void {
    this.entries.delete(serial);
    this.fromUnknown.delete(serial);
    this.flagged.delete(serial);
  }

  /**
   * Hosts already in a candidate state at start: since when, from their commits' times (newest
   * first, reading conf.json's State back until it differs). Without history (--no-git) or when
   * it does not match, the start time stands in and the earlier state counts as unknown.
   */
  private async rebuild(): Promise<void> {
    const startedAt = this.now();
    const waiting = [...this.deps.store.scan()].filter((h) => CANDIDATES.includes(h.State)).map((h) => ({ serial: h.Serial ?? '', state: h.State }));
    for (const { serial, state } of waiting) {
      let entry: StateEntry | undefined;
      try {
        entry = entryFromHistory(state, await this.statesAt(serial, state));
      } catch {
        entry = undefined; // no history (--no-git) or unreadable: the fallback below
      }
      // A change since start (or during the read) knows better.
      if (this.touched.has(serial) || this.deps.store.get(serial)?.State !== state) continue;
      this.entries.set(serial, entry ?? { state, since: startedAt, from: undefined });
      if (!entry) this.fromUnknown.add(serial);
    }
    this.check();
  }

  /** The host's commits, newest first, with State as of each, up to the first one in another state. */
  private async statesAt(serial: string, current: HostState): Promise<StateAtCommit[]> {
    const out: StateAtCommit[] = [];
    for (const c of await this.deps.store.history(serial)) {
      const conf = await this.deps.store.confAt(serial, c.commit);
      const state = conf === undefined ? undefined : (JSON.parse(conf) as { State?: HostState }).State;
      out.push({ time: c.time, state });
      if (state !== current) break;
    }
    return out;
  }
}

import type { HostState } from './host.ts';

// Stuck installs (README "Stuck installs"): a host that has been `installing`, or `configured`
// after a reinstall request, for longer than the threshold. Pure: the caller passes the clock,
// the hosts' state entries and their history; nothing here keeps time or reads git.

/** How long a host has been in its state, and where it came from. */
export interface StateEntry {
  state: HostState;
  /** When the host entered `state` (ms since the epoch). */
  since: number;
  /** The state before; undefined for a host created in it, or when history does not say. */
  from: HostState | undefined;
}

/** A host flagged as stuck: the route's and the event's form. */
export interface StuckHost {
  Serial: string;
  State: HostState;
  /** RFC 3339 UTC: when the host entered State. */
  Since: string;
  /** Whole seconds in State so far. */
  Seconds: number;
  /** The state before (null when unknown): `configured` is watched only after a reinstall request. */
  From: HostState | null;
}

/** Default threshold: see README "Stuck installs" for why an hour. */
export const DEFAULT_STUCK_AFTER_SECONDS = 3600;

/** States a reinstall is requested from (as the power hook's trigger): configured after them is a machine expected to netboot. */
const INSTALLED_STATES: readonly (HostState | undefined)[] = ['installing', 'installed', 'running'];

/**
 * Whether time in this entry's state counts toward being stuck: every `installing`, and a
 * `configured` that was entered from `installing`/`installed`/`running` (a reinstall or a
 * restarted install). A host set to `configured` before it ever installed (pre-staged) waits for
 * its first boot, which nobody promised: not watched. A `configured` host whose earlier state is
 * not known (no history: --no-git) is watched, since mayu cannot tell.
 */
export function isWatched(entry: Pick<StateEntry, 'state' | 'from'>, fromKnown = true): boolean {
  if (entry.state === 'installing') return true;
  if (entry.state !== 'configured') return false;
  return !fromKnown || INSTALLED_STATES.includes(entry.from);
}

/** The entry after a change from `from` to `to` at `now`: the same entry while the state stays. */
export function nextEntry(prev: StateEntry | undefined, from: HostState | undefined, to: HostState, now: number): StateEntry {
  if (prev && prev.state === to) return prev;
  return { state: to, since: now, from };
}

/** One of the host's commits with the State its conf.json had then (undefined: no conf.json, the host did not exist). */
export interface StateAtCommit {
  /** RFC 3339. */
  time: string;
  state: HostState | undefined;
}

/**
 * Rebuilds a host's entry from its history (newest commit first): it entered its current state
 * at the oldest commit of the newest unbroken run of commits in that state, coming from the state
 * of the commit before that run. undefined when the newest commit is not in `current` (history
 * that does not match the host: the caller falls back).
 */
export function entryFromHistory(current: HostState, commits: readonly StateAtCommit[]): StateEntry | undefined {
  if (commits.length === 0 || commits[0]!.state !== current) return undefined;
  let i = 0;
  while (i + 1 < commits.length && commits[i + 1]!.state === current) i++;
  const since = Date.parse(commits[i]!.time);
  if (Number.isNaN(since)) return undefined;
  return { state: current, since, from: commits[i + 1]?.state };
}

/** The stuck form of an entry at `now`, or undefined when it is not stuck (yet). */
export function stuckHost(serial: string, entry: StateEntry, now: number, afterMs: number, fromKnown = true): StuckHost | undefined {
  if (!isWatched(entry, fromKnown)) return undefined;
  const ms = now - entry.since;
  if (ms < afterMs) return undefined;
  return {
    Serial: serial, State: entry.state, Since: new Date(entry.since).toISOString().replace('.000Z', 'Z'),
    Seconds: Math.floor(ms / 1000), From: entry.from ?? null,
  };
}

/**
 * How often to look: a quarter of the threshold (so a host is flagged at most 25 % late),
 * between 100 ms and 30 s.
 */
export function checkIntervalMs(afterMs: number): number {
  return Math.min(30_000, Math.max(100, Math.floor(afterMs / 4)));
}

/** "1h12m", "45m", "30s": the time a host has been stuck, for humans. */
export function formatStuckFor(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d${h % 24}h`;
}

/** The event message of a new episode, without the serial. */
export function stuckMessage(s: StuckHost): string {
  return `stuck in ${s.State} for ${formatStuckFor(s.Seconds)} (since ${s.Since})`;
}

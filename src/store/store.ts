import type { Host } from '../core/host.ts';
import type { Step } from '../core/host-changes.ts';
import type { HostIndexView } from '../core/host-index.ts';
import { INSTALL_FAILURES_FILE } from '../core/install-failures.ts';

/**
 * Files a host's folder may hold beside conf.json (conf.json itself stays 0.11's exact format).
 * Stores load these with the host and keep them in its folder on every later change; any other
 * file found there is ignored.
 */
export const HOST_SIDE_FILES: readonly string[] = [INSTALL_FAILURES_FILE];

/** The host record in its folder, `<serial>/conf.json`, and the cluster's own file at the top. */
export const HOST_FILE = 'conf.json';
export const CLUSTER_FILE = 'cluster.json';

export interface CommitInfo {
  /** The commit id; `etcd-<revision>-<change>` for a change not yet in git (uncommitted). */
  commit: string;
  /** RFC 3339, UTC. */
  time: string;
  message: string;
  /** etcd store: a change already in etcd that the history writer has not committed to git yet. */
  uncommitted?: true;
}

export interface ClusterConfig {
  DefaultEtcdClusterToken: string;
}

/**
 * The cluster directory. Reads come from memory (loaded once at open). apply() updates memory
 * synchronously, so a caller that computes steps from get() and applies them without awaiting
 * in between can never interleave with another change; its promise resolves once every step is
 * durable (one commit each in git mode), or rejects and rolls memory back.
 */
/**
 * A file of mayu's own under a reserved top-level folder (issue 17: `_admission/<serial>.json`,
 * `_config/inventory.yaml`); `content` undefined removes it. Such folders are never host
 * folders (outside-commits.ts isReservedName), so conf.json of hosts keeps 0.11's format.
 */
export interface RecordWrite {
  folder: string;
  name: string;
  content: string | undefined;
}

/** Reserved folders whose files the stores load at open and keep (one level, files only). */
export const RECORD_FOLDERS: readonly string[] = ['_admission', '_config'];

export interface HostStore {
  readonly kind: 'git' | 'files' | 'etcd';
  get(serial: string): Host | undefined;
  all(): Host[];
  /** The live records, not copies: for read-only scans on hot paths (address allocation, profile counts). */
  scan(): Iterable<Readonly<Host>>;
  size(): number;
  /** Free addresses, profile counts and MACs of the hosts applied so far, kept in step (no scans). */
  index(): HostIndexView;
  /** One of the host's HOST_SIDE_FILES as applied so far; undefined when it has none. */
  sideFile(serial: string, name: string): string | undefined;
  clusterConfig(): ClusterConfig;
  /** Resolves with the commit id of the last step once all are durable (git mode; undefined without git or steps). */
  apply(serial: string, steps: readonly Step[]): Promise<string | undefined>;
  /**
   * Removes a host (its `<serial>/` folder) in one commit with this message (without the
   * `<serial>: ` prefix); memory changes at once, as with apply(). The history stays in git.
   * Resolves with the commit id once durable, as apply() does (git mode; undefined without git).
   */
  remove(serial: string, message: string): Promise<string | undefined>;
  /** Changes applied and not yet durable (the batch being written and the queue behind it). */
  writeQueueDepth(): number;
  /** Resolves when everything applied so far is durable: answers that read state wait on it. */
  settled(): Promise<void>;
  /** As settled(), for the changes of one host only (a read about that host waits on it). */
  settledFor(serial: string): Promise<void>;
  /**
   * Resolves once every change acknowledged so far is in the history operators read (git
   * log). The git store acknowledges a busy storm's changes from its journal and lets git trail
   * by up to ~0.1 s; an operator's own change waits for this, so git log shows it at the answer.
   */
  flushHistory(): Promise<void>;
  /** Newest first. */
  history(serial: string): Promise<CommitInfo[]>;
  /**
   * The host's conf.json text as of `commit` (one of its history() commits); undefined when the
   * commit has no conf.json for it (e.g. a commit of another host's). Git mode only.
   */
  confAt(serial: string, commit: string): Promise<string | undefined>;
  close(): Promise<void>;
  /** Files of a RECORD_FOLDERS folder (name → text) as applied so far; absent on stores without them (etcd). */
  records?(folder: string): ReadonlyMap<string, string>;
  /**
   * One commit with this whole message writing these files; memory changes at once, resolves
   * with the commit id once durable (as apply()). Called in the same tick as an apply(), both
   * land in the same batch, this one's commit first.
   */
  applyRecords?(writes: readonly RecordWrite[], message: string): Promise<string | undefined>;
}

/** What a store tells the composition root about its writes (metrics); every callback optional. */
export interface StoreObserver {
  /** A batch of `size` changes (commits in git mode) became durable. */
  batchWritten?(size: number): void;
  /** A batch could not be made durable: its `changes` (and those queued behind it) were refused and rolled back. */
  batchFailed?(err: Error, changes: number): void;
  /** git's index was written (git mode): its entries, the files checked since the last write, the write's own time. */
  indexWritten?(info: { entries: number; checked: number; ms: number }): void;
}

export class StoreError extends Error {}

/** The host's conf.json was edited by hand into something mayu cannot take: its changes wait for the operator (409). */
export class HostEditRefusedError extends StoreError {}

/**
 * A change mayu did not make and refuses to take (an operator's commit, a hand-edited
 * conf.json): named by `source` (a commit or a file), with what is wrong, one line each.
 */
export interface OutsideProblem {
  source: string;
  problems: string[];
}

/** A host changed by an operator's commit or a hand edit, once mayu took it. */
export interface AdoptedChange {
  serial: string;
  before: Host | undefined;
  /** undefined: the host was removed. */
  after: Host | undefined;
  /** The commit that now has it. */
  commit: string | undefined;
  /** Subjects of the commits that made it. */
  messages: string[];
}

/**
 * The changes stand (durable in the git store's journal) but git could not be written yet: a
 * wait for git history (flushHistory) fails with this. Retried; nothing is lost.
 */
export class HistoryPendingError extends StoreError {}

/** The shared store (etcd) could not be reached or answered an error: nothing was written (503). */
export class StoreUnavailableError extends StoreError {}

/** A change another replica made at the same time refused this one; nothing was written: retry (503). */
export class StoreConflictError extends StoreError {}

/** Commit message of a host change, as 0.11 wrote it. */
export function hostCommitMessage(serial: string, message: string): string {
  return `${serial}: ${message}`;
}

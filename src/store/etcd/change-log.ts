import { ADMISSION_FOLDER, decodeRecord, recordFileName } from '../../core/admission.ts';
import { normalizeSerial } from '../../core/serial.ts';
import { RECORD_FOLDERS } from '../store.ts';

// The `log` key: every transaction of the etcd store writes the changes it makes, in order, one
// entry per step (one git commit each, with the step's message). The history writer turns each
// revision of the key into commits; a revision is a whole transaction, so nothing is half-seen.

export interface LogEntry {
  serial: string;
  /** Commit message without the `<serial>: ` prefix. */
  message: string;
  /** When the change was made (RFC 3339): the commit's time. */
  time: string;
  /** conf.json text after the step; null when the step removes the host. */
  conf: string | null;
  /** Side files this step writes (whole content). */
  files?: Record<string, string>;
  /**
   * Files of reserved folders this change writes (admission records, the inventory: null
   * removes one); such a change is one commit of them, as the git store's applyRecords(), and
   * `conf` is null and ignored (the host is not touched).
   */
  records?: { folder: string; name: string; content: string | null }[];
}

export function encodeLog(entries: readonly LogEntry[]): string {
  return JSON.stringify({ v: 1, changes: entries });
}

/** Throws on anything mayu did not write: such a revision is reported and never committed. */
export function decodeLog(text: string): LogEntry[] {
  const raw = JSON.parse(text) as { v?: unknown; changes?: unknown };
  if (raw.v !== 1 || !Array.isArray(raw.changes)) throw new Error('not a mayu change log (v 1)');
  return raw.changes.map((c: Record<string, unknown>, i: number) => {
    const bad = (what: string) => new Error(`change ${i}: ${what}`);
    if (typeof c.serial !== 'string' || !isSerial(c.serial)) throw bad('bad serial');
    if (typeof c.message !== 'string' || c.message.includes('\n')) throw bad('bad message');
    if (typeof c.time !== 'string' || Number.isNaN(Date.parse(c.time))) throw bad('bad time');
    if (c.conf !== null && typeof c.conf !== 'string') throw bad('bad conf');
    const files = c.files as Record<string, unknown> | undefined;
    if (files !== undefined && (typeof files !== 'object' || Object.values(files).some((v) => typeof v !== 'string'))) throw bad('bad files');
    const records = c.records as LogEntry['records'] | undefined;
    if (records !== undefined && (!Array.isArray(records) || records.length > 8 || !records.every((r) => typeof r === 'object' && r !== null
      && RECORD_FOLDERS.includes(r.folder) && typeof r.name === 'string' && /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(r.name) && (r.content === null || typeof r.content === 'string')))) throw bad('bad records');
    for (const r of records ?? []) if (r.folder === ADMISSION_FOLDER && r.content !== null && !isRecordOf(r.name, r.content)) throw bad(`bad admission record ${r.name}`);
    return {
      serial: c.serial, message: c.message, time: c.time, conf: c.conf as string | null,
      ...(files ? { files: files as Record<string, string> } : {}),
      ...(records ? { records: records.map((r) => ({ folder: r.folder, name: r.name, content: r.content })) } : {}),
    };
  });
}

/** Git trailer lines recording which etcd change a commit is: the history writer resumes after the last one. */
export function trailer(revision: number, index: number, count: number): string {
  return `Mayu-Etcd-Revision: ${revision}\nMayu-Etcd-Change: ${index + 1}/${count}`;
}

export interface TrailerPosition {
  revision: number;
  /** 0-based index of the change within the revision's log. */
  index: number;
  count: number;
}

export function parseTrailer(message: string): TrailerPosition | undefined {
  const rev = /^Mayu-Etcd-Revision: (\d+)$/m.exec(message);
  const change = /^Mayu-Etcd-Change: (\d+)\/(\d+)$/m.exec(message);
  if (!rev || !change) return undefined;
  return { revision: Number(rev[1]), index: Number(change[1]) - 1, count: Number(change[2]) };
}

/**
 * Trailer of the commit `mayu migrate --to git` ends the etcd history with: the commits after it
 * are single-node mayu's, and a later migration into etcd starts a new change log (its revisions
 * are another etcd's), so a history writer never resumes from the trailers before it.
 */
export function endTrailer(revision: number): string {
  return `Mayu-Etcd-End: ${revision}`;
}

export function isEndOfEtcd(message: string): boolean {
  return /^Mayu-Etcd-End: \d+$/m.test(message);
}

/** Where git's history writer stopped: the first revision and change of the log git still lacks. */
export function resumePoint(pos: TrailerPosition | undefined, historyStart: number): { revision: number; skip: number } {
  if (!pos) return { revision: historyStart, skip: 0 };
  return pos.index + 1 < pos.count ? { revision: pos.revision, skip: pos.index + 1 } : { revision: pos.revision + 1, skip: 0 };
}

/** A commit message as shown to operators (history): without the trailer paragraph. */
export function withoutTrailer(message: string): string {
  return message.replace(/\n\nMayu-Etcd-Revision: \d+\nMayu-Etcd-Change: \d+\/\d+\n?$/, '').replace(/\n\nMayu-Etcd-End: \d+\n?$/, '');
}

function isRecordOf(name: string, text: string): boolean {
  try {
    return recordFileName(decodeRecord(text).Serial) === name;
  } catch {
    return false;
  }
}

function isSerial(s: string): boolean {
  try {
    return normalizeSerial(s) === s;
  } catch {
    return false;
  }
}

// Pure text output of mayuctl list / status / history, matching 0.11's mayuctl where it had
// one (list, status) so scripts parsing that output keep working.

import { goTimeString } from '../../core/go-time.ts';
import { ZERO_TIME, type Host } from '../../core/host.ts';
import { UTC_ZONE, type TimeZone } from '../../core/tzif.ts';
import { columnize } from './columnize.ts';

export const DEFAULT_LIST_FIELDS = [
  'ip', 'serial', 'profile', 'ipmiaddr', 'providerid', 'etcdtoken', 'metadata', 'coreos', 'state', 'lastboot',
] as const;

const dash = (v: string | undefined): string => (v === undefined || v.trim() === '' ? '-' : v);
const list = (v: readonly string[] | undefined): string => dash((v ?? []).join(','));

/** Column name → cell text. The first block is 0.11's set; the second block is ours. */
const LIST_FIELDS: ReadonlyMap<string, (h: Host) => string> = new Map<string, (h: Host) => string>([
  ['ip', (h) => dash(h.InternalAddr)],
  ['serial', (h) => dash(h.Serial)],
  ['profile', (h) => dash(h.Profile)],
  ['ipmiaddr', (h) => dash(h.IPMIAddr)],
  ['providerid', (h) => dash(h.ProviderId)],
  ['etcdtoken', (h) => dash(h.EtcdClusterToken)],
  ['metadata', (h) => list(h.FleetMetadata)],
  ['coreos', (h) => dash(h.CoreOSVersion)],
  ['state', (h) => `"${h.State}"`],
  ['lastboot', (h) => formatLastBoot(h.LastBoot)],
  ['machineid', (h) => dash(h.MachineID)],
  ['docker', (h) => dash(h.DockerVersion)],
  ['etcd', (h) => dash(h.EtcdVersion)],
  ['fleet', (h) => dash(h.FleetVersion)],
  ['yochu', (h) => dash(h.YochuVersion)],
  ['mayu', (h) => dash(h.MayuVersion)],
  ['k8s', (h) => dash(h.K8sVersion)],
  ['rkt', (h) => dash(h.RktVersion)],
  ['hostname', (h) => dash(h.Hostname)],
  ['macs', (h) => list(h.MacAddresses)],
  ['cabinet', (h) => String(h.Cabinet ?? 0)],
]);

export const LIST_FIELD_NAMES: readonly string[] = [...LIST_FIELDS.keys()].sort();

export class InvalidFieldError extends Error {}

/** Parses --fields; messages are 0.11's. */
export function parseFields(spec: string): string[] {
  if (spec === '') {
    throw new InvalidFieldError(`Invalid fields parameter. Please choose valid fields: ${LIST_FIELD_NAMES.join(',')}`);
  }
  const fields = spec.split(',');
  for (const f of fields) {
    if (!LIST_FIELDS.has(f)) throw new InvalidFieldError(`Invalid field: ${JSON.stringify(f)}.`);
  }
  return fields;
}

export interface ListOptions {
  fields?: readonly string[];
  legend?: boolean;
  /** Columns after the fields (list --stuck), not selectable by --fields. */
  extra?: readonly { name: string; cell: (h: Host) => string }[];
}

/** Go sorts strings by UTF-8 bytes; JS's default sort compares UTF-16 units. */
const byBytes = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));

/**
 * The `mayuctl list` table without trailing newline; '' when there is no line at all. Rows are
 * sorted on their cells joined by "|", as 0.11 sorted its columnize input lines.
 */
export function formatList(hosts: readonly Host[], options: ListOptions = {}): string {
  const fields = options.fields ?? DEFAULT_LIST_FIELDS;
  const cell = (f: string): ((h: Host) => string) => {
    const fn = LIST_FIELDS.get(f);
    if (!fn) throw new InvalidFieldError(`Invalid field: ${JSON.stringify(f)}.`);
    return fn;
  };
  const columns = [...fields.map(cell), ...(options.extra ?? []).map((e) => e.cell)];
  const rows = hosts
    .map((h) => columns.map((fn) => fn(h)))
    .sort((a, b) => byBytes(a.join('|'), b.join('|')));
  if (options.legend !== false) rows.unshift([...fields, ...(options.extra ?? []).map((e) => e.name)].map((f) => f.toUpperCase()));
  return columnize(rows);
}

const RFC3339 = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$/;

/**
 * Go's Format("2006-01-02 15:04:05") of the stored time: the wall clock in the time's own
 * offset, which is the text as stored, so no time-zone arithmetic (nor Date's ms rounding).
 */
export function formatLastBoot(stored: string): string {
  const m = RFC3339.exec(stored);
  if (!m) return stored === '' ? formatLastBoot(ZERO_TIME) : stored;
  return `${m[1]} ${m[2]}`;
}

/** The host's newest install failure as GET /admin/host/<serial>/install-failures answers it. */
export interface StatusFailure {
  Time: string;
  Stage: string;
  Reason: string;
  State: string;
  /** The change that cleared it (a state change since); absent while it stands. */
  ClearedBy?: string;
}

/**
 * `mayuctl status` lines as 0.11 printed them (labels, order, columnize alignment; an empty
 * value leaves the padding in place). A missing IP prints "<nil>" as Go's nil net.IP did.
 * A host with an install failure gets one more line (ours), `InstallFailure:`, last.
 */
export function formatStatus(h: Host, zone: TimeZone = UTC_ZONE, failure?: StatusFailure): string {
  const lines: [string, string][] = [
    ['Serial:', h.Serial ?? ''],
    ['IP:', h.InternalAddr || '<nil>'],
    ['IPMI:', h.IPMIAddr || '<nil>'],
    ['Provider ID:', h.ProviderId ?? ''],
    ['Macs:', (h.MacAddresses ?? []).join(', ')],
    ['Cabinet:', String(h.Cabinet ?? 0)],
    ['Machine on Cabinet:', String(h.MachineOnCabinet ?? 0)],
    ['Hostname:', h.Hostname ?? ''],
    ['MachineID:', h.MachineID ?? ''],
    ['ConnectedNIC:', h.ConnectedNIC],
    ['Profile:', h.Profile ?? ''],
    ['DisableEngine:', String(h.FleetDisableEngine ?? false)],
    ['State:', `"${h.State}"`],
    ['EtcdToken:', h.EtcdClusterToken ?? ''],
    ['Metadata:', (h.FleetMetadata ?? []).join(', ')],
    ['CoreOS:', h.CoreOSVersion ?? ''],
    ['Mayu:', h.MayuVersion ?? ''],
    ['Yochu:', h.YochuVersion ?? ''],
    ['Docker:', h.DockerVersion ?? ''],
    ['Etcd:', h.EtcdVersion ?? ''],
    ['Fleet:', h.FleetVersion ?? ''],
    ['Rkt:', h.RktVersion ?? ''],
    ['K8s:', h.K8sVersion ?? ''],
    // Go's Time.String() of the parsed value: "2026-12-01 20:37:10.123456789 +0100 CET" when
    // mayuctl's local zone has that offset then, else the offset twice ("+0200 +0200").
    ['LastBoot:', goTimeString(h.LastBoot || ZERO_TIME, zone)],
    ['Enabled:', String(h.Enabled ?? false)],
  ];
  if (failure) {
    const cleared = failure.ClearedBy ? ` (cleared: ${failure.ClearedBy})` : '';
    lines.push(['InstallFailure:', `${formatUtc(failure.Time)} UTC ${failure.Stage}: ${failure.Reason} (state ${failure.State})${cleared}`]);
  }
  return columnize(lines);
}

/** `mayuctl power-hook`: the last run's fields, then its output. */
export function formatPowerHook(r: Readonly<Record<string, unknown>>): string {
  const text = (v: unknown) => (v === undefined || v === null || v === '' ? '-' : String(v));
  const status = r['running'] ? 'running' : r['error'] ? `failed: ${text(r['error'])}` : r['exitCode'] === 0 ? 'ok' : `failed: exit code ${text(r['exitCode'])}${r['signal'] ? `, signal ${text(r['signal'])}` : ''}`;
  const lines = columnize([
    ['Serial:', text(r['serial'])],
    ['Status:', status],
    ['Command:', text(r['command'])],
    ['Started:', text(r['startedAt'])],
    ['Finished:', text(r['finishedAt'])],
  ]);
  const output = (label: string, v: unknown) => (typeof v === 'string' && v !== '' ? `\n${label}:\n${v.trimEnd()}` : '');
  return `${lines}${output('stdout', r['stdout'])}${output('stderr', r['stderr'])}`;
}

/** One commit of a host's audit trail, as GET /admin/host/<serial>/history answers it. */
export interface HistoryEntry {
  commit: string;
  time: string;
  message: string;
  /** In etcd, not yet in git (etcd store, the history writer trails): `commit` is etcd-<revision>-<change>. */
  uncommitted?: boolean;
}

/** "2006-01-02 15:04:05" in UTC; the text unchanged when it is not RFC 3339. */
export function formatUtc(stored: string): string {
  const m = RFC3339.exec(stored);
  if (!m) return stored;
  // Date keeps milliseconds only; seconds are all we print, so drop the fraction first.
  const date = new Date(`${m[1]}T${m[2]}${m[4]}`);
  return Number.isNaN(date.getTime()) ? stored : date.toISOString().slice(0, 19).replace('T', ' ');
}

/**
 * `mayuctl history` lines, in the server's order (newest first), no trailing newline. A
 * multi-line commit message is folded so that each commit stays one line.
 */
export function formatHistory(entries: readonly HistoryEntry[]): string {
  const oneLine = (m: string): string => m.trim().replace(/\s*\n\s*/g, ' ');
  return entries.map((e) => `${formatUtc(e.time)}  ${e.uncommitted ? 'in-etcd ' : e.commit.slice(0, 8)}  ${oneLine(e.message)}${e.uncommitted ? ` (in etcd as ${e.commit}, not yet committed to git)` : ''}`).join('\n');
}

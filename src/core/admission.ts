// Admission (issue 17): which machines get a host. Pure: the records, the inventory's shape, the
// decision for a machine that has no host yet, and the commit messages. The service
// (src/service/admission-service.ts) keeps them in the cluster repo's reserved folders.

export type AdmissionMode = 'open' | 'known' | 'approve';

/** Where mayu keeps its admission records and the inventory: `_` folders are never host folders. */
export const ADMISSION_FOLDER = '_admission';
export const CONFIG_FOLDER = '_config';
export const INVENTORY_FILE = 'inventory.yaml';
export const INVENTORY_PATH = `${CONFIG_FOLDER}/${INVENTORY_FILE}`;

/** discovered: seen in `known` mode, not in the inventory. pending: waiting in `approve` mode. rejected: an operator said no. */
export type AdmissionStatus = 'discovered' | 'pending' | 'rejected';

/** `_admission/<serial>.json`: a machine that asked for a host and has none (approved ones are hosts). */
export interface AdmissionRecord {
  Serial: string;
  Status: AdmissionStatus;
  /** The admission mode it was recorded under. */
  Mode: AdmissionMode;
  /** RFC 3339 UTC, whole seconds. */
  FirstSeen: string;
  /** MACs known when it was recorded (the NIC iPXE booted from, or the installer's NICs). */
  MacAddresses: string[];
  /** Address its first request came from. */
  Source: string;
  RejectedAt?: string;
}

export interface InventoryEntry {
  serial: string;
  /** The profile the machine gets outright; absent: selectors and quantities decide, as for any machine. */
  profile?: string;
}

/** The inventory, by serial, in the file's order. */
export type Inventory = ReadonlyMap<string, InventoryEntry>;

export class AdmissionRecordError extends Error {}

export function recordFileName(serial: string): string {
  return `${serial}.json`;
}

export function encodeRecord(r: AdmissionRecord): string {
  const o: Record<string, unknown> = {
    Serial: r.Serial, Status: r.Status, Mode: r.Mode, FirstSeen: r.FirstSeen, MacAddresses: r.MacAddresses, Source: r.Source,
  };
  if (r.RejectedAt) o.RejectedAt = r.RejectedAt;
  return `${JSON.stringify(o, null, 2)}\n`;
}

const STATUSES: readonly string[] = ['discovered', 'pending', 'rejected'];
const MODES: readonly string[] = ['open', 'known', 'approve'];

export function decodeRecord(text: string): AdmissionRecord {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new AdmissionRecordError(`not JSON: ${(err as Error).message}`);
  }
  if (typeof o !== 'object' || o === null) throw new AdmissionRecordError('expected a JSON object');
  if (typeof o.Serial !== 'string' || typeof o.Status !== 'string' || !STATUSES.includes(o.Status)) throw new AdmissionRecordError('Serial and Status (discovered, pending, rejected) are required');
  return {
    Serial: o.Serial,
    Status: o.Status as AdmissionStatus,
    Mode: (typeof o.Mode === 'string' && MODES.includes(o.Mode) ? o.Mode : 'approve') as AdmissionMode,
    FirstSeen: typeof o.FirstSeen === 'string' ? o.FirstSeen : '',
    MacAddresses: Array.isArray(o.MacAddresses) ? o.MacAddresses.filter((m): m is string => typeof m === 'string') : [],
    Source: typeof o.Source === 'string' ? o.Source : '',
    ...(typeof o.RejectedAt === 'string' ? { RejectedAt: o.RejectedAt } : {}),
  };
}

/** What a machine without a host is answered. */
export type AdmissionDecision =
  | { kind: 'admit'; profile?: string }
  /** Not admitted (yet): it waits and asks again; `record` is the status to record when it has no record. */
  | { kind: 'wait'; status: AdmissionStatus; record?: AdmissionStatus };

/**
 * The inventory admits in every mode and names profiles; `open` admits everyone else too;
 * `known` lists the others as discovered, `approve` as pending. A rejected machine waits.
 */
export function decideAdmission(mode: AdmissionMode, entry: InventoryEntry | undefined, record: AdmissionRecord | undefined): AdmissionDecision {
  if (entry) return { kind: 'admit', profile: entry.profile };
  if (mode === 'open') return { kind: 'admit' };
  if (record) return { kind: 'wait', status: record.Status };
  const status: AdmissionStatus = mode === 'known' ? 'discovered' : 'pending';
  return { kind: 'wait', status, record: status };
}

export const admissionMessages = {
  discovered: (mode: AdmissionMode) => `discovered (${mode} mode)`,
  pending: (mode: AdmissionMode) => `pending approval (${mode} mode)`,
  approved: (profile: string) => `approved (profile ${profile})`,
  rejected: () => 'rejected',
  inventoryAdded: (profile?: string) => `added to inventory${profile ? ` (profile ${profile})` : ''}`,
  inventoryRemoved: () => 'removed from inventory',
};

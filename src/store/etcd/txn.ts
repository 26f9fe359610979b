import type { IRequestOp, ITxnRequest, ITxnResponse, ICompare } from 'etcd3';
import type { LogEntry } from './change-log.ts';

// One etcd transaction for a batch of host changes: the compares that keep replicas from
// overwriting each other or breaking cluster-wide invariants, the writes, and, when a compare
// fails, a range read of every compared key so the store can tell which changes lost.

export interface TxnItem {
  serial: string;
  hostKey: string;
  entries: LogEntry[];
  /** conf.json after the change; null removes the host (and its side files). */
  conf: string | null;
  /** Side files this change writes (name -> text). */
  files: Record<string, string>;
  filesPrefix: string;
  fileKey: (name: string) => string;
  /** addr/<ip> key the change hands out (must not exist yet). */
  takeAddr?: string;
  /** addr/<ip> key the change gives back. */
  freeAddr?: string;
  /** quota/<profile> key of a limited profile the host joins. */
  quotaKey?: string;
  /**
   * A change of admission records / the inventory instead of a host's (null deletes a key):
   * each key compared on its mod revision; hostKey, conf and files are not used.
   */
  records?: { key: string; value: string | null }[];
}

export interface ResolvedItem {
  item: TxnItem;
  /** Mod revision the host key must have (0: must not exist). */
  expectHost: number | undefined;
  /** Mod revision the quota key must have; undefined: compared by an earlier change of the batch. */
  quotaExpect: number | undefined;
  /** Mod revision each of item.records' keys must have (0: must not exist). */
  recordExpect?: number[];
}

export interface TxnCompare {
  key: string;
  check: { mod: number } | { absent: true };
  /** The changes that fail when this compare does. */
  owners: TxnItem[];
}

export function buildTxn(logKey: string, batch: readonly ResolvedItem[], logValue: string): { request: ITxnRequest; compares: TxnCompare[] } {
  const compares: TxnCompare[] = [];
  const success: IRequestOp[] = [];
  const quotas = new Map<string, TxnCompare | undefined>();
  const put = (key: string, value: string) => success.push({ request_put: { key: Buffer.from(key), value: Buffer.from(value) } });
  for (const { item, expectHost, quotaExpect, recordExpect } of batch) {
    if (item.records) {
      item.records.forEach((r, i) => {
        compares.push({ key: r.key, check: { mod: recordExpect?.[i] ?? 0 }, owners: [item] });
        if (r.value === null) success.push({ request_delete_range: { key: Buffer.from(r.key) } });
        else put(r.key, r.value);
      });
      continue;
    }
    compares.push({ key: item.hostKey, check: { mod: expectHost ?? 0 }, owners: [item] });
    if (item.takeAddr) compares.push({ key: item.takeAddr, check: { absent: true }, owners: [item] });
    if (item.quotaKey) {
      let c = quotas.get(item.quotaKey);
      if (!quotas.has(item.quotaKey)) {
        c = quotaExpect === undefined ? undefined : { key: item.quotaKey, check: { mod: quotaExpect }, owners: [] };
        if (c) compares.push(c);
        quotas.set(item.quotaKey, c);
        put(item.quotaKey, String(Date.now()));
      }
      c?.owners.push(item);
    }
    if (item.conf === null) {
      success.push({ request_delete_range: { key: Buffer.from(item.hostKey) } });
      success.push({ request_delete_range: { key: Buffer.from(item.filesPrefix), range_end: prefixEnd(Buffer.from(item.filesPrefix)) } });
    } else {
      put(item.hostKey, item.conf);
      for (const [name, text] of Object.entries(item.files)) put(item.fileKey(name), text);
    }
    if (item.takeAddr) put(item.takeAddr, item.serial);
    if (item.freeAddr) success.push({ request_delete_range: { key: Buffer.from(item.freeAddr) } });
  }
  put(logKey, logValue);
  const compare: ICompare[] = compares.map((c) => ('mod' in c.check
    ? { key: Buffer.from(c.key), target: 'Mod', result: 'Equal', mod_revision: c.check.mod }
    : { key: Buffer.from(c.key), target: 'Create', result: 'Equal', create_revision: 0 }));
  const failure: IRequestOp[] = compares.map((c) => ({ request_range: { key: Buffer.from(c.key), keys_only: true } }));
  return { request: { compare, success, failure }, compares };
}

/** The changes whose compares failed, from the failure branch's reads (one per compare, in order). */
export function conflictsOf(compares: readonly TxnCompare[], res: ITxnResponse): TxnItem[] {
  const lost = new Set<TxnItem>();
  compares.forEach((c, i) => {
    const kv = res.responses[i]?.response_range?.kvs[0];
    const holds = 'mod' in c.check ? Number(kv?.mod_revision ?? 0) === c.check.mod : kv === undefined;
    if (!holds) for (const o of c.owners) lost.add(o);
  });
  return [...lost];
}

/** The end of the range of keys starting with `prefix`. */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

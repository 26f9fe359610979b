import type { Etcd3, IKeyValue } from 'etcd3';
import { decodeHost, encodeHost } from '../../core/host.ts';
import type { TimeZone } from '../../core/tzif.ts';
import { parseClusterJson } from '../cluster-json.ts';
import { GitStore } from '../git-store.ts';
import { HOST_SIDE_FILES, RECORD_FOLDERS, StoreError } from '../store.ts';
import { endTrailer, resumePoint } from './change-log.ts';
import { GitHistoryReader } from './git-history-reader.ts';
import { fragmented, resumeAfterLastEvent } from './connect.ts';
import { commitLogRevision } from './history-writer.ts';
import type { EtcdKeys } from './keys.ts';
import { prefixEnd } from './txn.ts';

// `mayu migrate --to git`: the replicas' cluster back into one single-node cluster directory,
// the audit repo their history writer kept. Hosts are not copied: git already has them, commit
// by commit, from etcd's change log. So the migration (1) refuses while a replica runs (the
// history-writer election has candidates), (2) finishes the history writer's catch-up itself if
// git trails etcd's log (refuses if etcd compacted what git lacks), (3) checks that git's tree
// now equals etcd (hosts, side files, admission records, cluster.json) and refuses, naming the
// keys, where it does not (keys written by something else than mayu are never committed as
// mayu's), (4) marks the prefix `migrated-out` (no replica starts on it again) and (5) ends the
// etcd history in git with one commit that changes no file (trailer Mayu-Etcd-End), so a later
// migration into etcd starts a fresh change log instead of resuming from old revisions.

export interface MigrationBackResult {
  hosts: number;
  /** Commits the catch-up wrote (changes etcd had that git did not yet). */
  caughtUp: number;
  /** etcd's revision the cluster directory now equals. */
  revision: number;
  /** Keys under the prefix that are not mayu's (reported, not migrated). */
  ignored: string[];
}

export async function migrateFromEtcd(o: { dir: string; client: Etcd3; keys: EtcdKeys; zone?: TimeZone }): Promise<MigrationBackResult> {
  const { client, keys } = o;
  const candidates = await client.getAll().prefix(keys.election).strings();
  if (Object.keys(candidates).length > 0) {
    throw new StoreError(`replicas are running on ${keys.prefix} (history writer candidates: ${Object.values(candidates).join(', ')}): stop every replica, then migrate`);
  }
  const snapshot = await readPrefix(client, keys.prefix);
  const clusterKv = snapshot.kvs.get(keys.cluster);
  if (!clusterKv) throw new StoreError(`no mayu cluster under ${keys.prefix} in etcd (no ${keys.cluster})`);
  if (snapshot.kvs.has(keys.migratedOut)) throw new StoreError(`${keys.prefix} was migrated out already: ${snapshot.kvs.get(keys.migratedOut)!.value.toString()}`);
  const cluster = parseClusterJson(clusterKv.value.toString());
  const logKv = snapshot.kvs.get(keys.log);
  const logRevision = logKv ? Number(logKv.mod_revision) : 0;

  const caughtUp = await catchUp({ ...o, token: cluster.DefaultEtcdClusterToken, logRevision });

  // The directory as single-node mayu opens it.
  const git = await GitStore.open({ dir: o.dir, zone: o.zone, randomBytes: () => Buffer.from(cluster.DefaultEtcdClusterToken, 'hex') });
  try {
    const { differences, ignored, hosts } = compare(git, snapshot.kvs, keys);
    if (git.clusterConfig().DefaultEtcdClusterToken !== cluster.DefaultEtcdClusterToken) differences.push(`${keys.cluster} (token)`);
    if (differences.length > 0) {
      throw new StoreError(`git (${o.dir}) and etcd (${keys.prefix} at revision ${snapshot.revision}) differ after the history caught up: ${differences.slice(0, 10).join(', ')}${differences.length > 10 ? ` and ${differences.length - 10} more` : ''}. `
        + 'Changes without a change log entry were not made by mayu: fix or delete those keys in etcd, then migrate again');
    }
    // Nothing may have changed since the snapshot (a replica started meanwhile); from here on no replica starts.
    const marked = await client.if(keys.log, 'Mod', '==', logRevision)
      .then(client.put(keys.migratedOut).value(JSON.stringify({ dir: o.dir, revision: snapshot.revision, at: new Date().toISOString() })))
      .commit();
    if (!marked.succeeded) throw new StoreError(`etcd changed under ${keys.prefix} during the migration (a replica is running?): nothing was migrated, try again once every replica is stopped`);
    await git.applyRecords([], `mayu migrated back from etcd (prefix ${keys.prefix} revision ${snapshot.revision}), single-node from here\n\n${endTrailer(snapshot.revision)}`);
    await git.flushHistory();
    return { hosts, caughtUp, revision: snapshot.revision, ignored };
  } finally {
    await git.close();
  }
}

/** Every key under the prefix at one revision. */
async function readPrefix(client: Etcd3, prefix: string): Promise<{ revision: number; kvs: Map<string, IKeyValue> }> {
  const kvs = new Map<string, IKeyValue>();
  const end = prefixEnd(Buffer.from(prefix));
  let key = Buffer.from(prefix);
  let revision: string | undefined;
  for (;;) {
    const res = await client.kv.range({ key, range_end: end, limit: 500, revision: revision ?? 0 });
    revision ??= String(res.header!.revision);
    for (const kv of res.kvs) kvs.set(kv.key.toString(), kv);
    if (!res.more || res.kvs.length === 0) break;
    key = Buffer.concat([res.kvs.at(-1)!.key, Buffer.from([0])]);
  }
  return { revision: Number(revision), kvs };
}

/** The history writer's work up to `logRevision`, done here (no replica runs): returns the commits written. */
async function catchUp(o: { dir: string; client: Etcd3; keys: EtcdKeys; zone?: TimeZone; token: string; logRevision: number }): Promise<number> {
  const times: Date[] = [];
  // Opened first: a killed writer's journal may hold commits beyond the branch, which the open
  // writes to git; git's last trailer is read after that, or those changes would be committed twice.
  const git = await GitStore.open({
    dir: o.dir, zone: o.zone, randomBytes: () => Buffer.from(o.token, 'hex'), now: () => times.shift() ?? new Date(), outsideChanges: 'history-only',
  });
  try {
    return await catchUpWith(git, times, o);
  } finally {
    await git.close();
  }
}

async function catchUpWith(git: GitStore, times: Date[], o: { dir: string; client: Etcd3; keys: EtcdKeys; logRevision: number }): Promise<number> {
  await git.flushHistory();
  const reader = new GitHistoryReader(o.dir);
  const pos = await reader.lastPosition().catch(() => undefined).finally(() => reader.close());
  const historyStart = Number(await o.client.get(o.keys.historyStart).string() ?? '1');
  const from = resumePoint(pos, historyStart);
  if (o.logRevision === 0 || from.revision > o.logRevision) return 0;
  // etcd must still have every revision from there on (not compacted), or the history has a gap.
  await o.client.kv.range({ key: Buffer.from(o.keys.log), revision: from.revision, count_only: true }).catch((err: Error) => {
    throw new StoreError(`git (${o.dir}) trails etcd's change log (git has it up to revision ${from.revision - 1}, etcd up to ${o.logRevision}) and etcd no longer has the revisions in between (${err.message}): the history would have a gap; nothing was migrated`);
  });
  let commits = 0;
  const failures: Error[] = [];
  // Not create(): it does not settle when etcd cancels the watch at once; the handlers and the timer do.
  const watcher = resumeAfterLastEvent(fragmented(o.client.watch().key(o.keys.log).startRevision(String(from.revision))).watcher());
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new StoreError(`etcd did not send the change log from revision ${from.revision} to ${o.logRevision} within 60 s`)), 60_000);
      watcher.on('error', (err: Error) => {
        clearTimeout(timer);
        reject(new StoreError(`git (${o.dir}) trails etcd's change log (git has it up to revision ${from.revision - 1}, etcd up to ${o.logRevision}) and etcd no longer has the revisions in between (${err.message}): the history would have a gap; nothing was migrated`));
      });
      watcher.on('put', (kv: IKeyValue) => {
        const revision = Number(kv.mod_revision);
        if (revision > o.logRevision) return;
        const last = commitLogRevision({
          git, revision, value: kv.value.toString(), from: revision === from.revision ? from.skip : 0, times,
          proceed: () => true,
          onBad: (err) => process.emitWarning(`change log revision ${revision} not written by mayu (or damaged), not committed: ${err.message}`),
          onFailed: (err) => failures.push(err),
        });
        if (last !== undefined) commits += last + 1 - (revision === from.revision ? from.skip : 0);
        if (revision === o.logRevision) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
  } finally {
    await watcher.cancel().catch(() => undefined);
  }
  await git.flushHistory();
  if (failures.length > 0) throw new StoreError(`git write failed during the catch-up: ${failures[0]!.message}`);
  return commits;
}

/** Where git's tree differs from etcd's keys (what replicas served), and the keys that are not mayu's. */
function compare(git: GitStore, kvs: ReadonlyMap<string, IKeyValue>, keys: EtcdKeys): { differences: string[]; ignored: string[]; hosts: number } {
  const differences: string[] = [];
  const ignored: string[] = [];
  const etcdHosts = new Map<string, string>();
  const etcdFiles = new Map<string, string>();
  const etcdRecords = new Map<string, string>();
  for (const [k, kv] of kvs) {
    const p = keys.parse(k);
    const text = kv.value.toString();
    if (p.kind === 'host') {
      try {
        const host = decodeHost(JSON.parse(text));
        if (host.Serial !== p.serial) throw new Error('serial does not match the key');
        etcdHosts.set(p.serial, encodeHost(host));
      } catch {
        ignored.push(k);
      }
    } else if (p.kind === 'file' && HOST_SIDE_FILES.includes(p.name)) {
      etcdFiles.set(`${p.serial}/${p.name}`, text);
    } else if (p.kind === 'record') {
      etcdRecords.set(`${p.folder}/${p.name}`, text);
    }
  }
  const ignoredSerials = new Set(ignored.map((k) => k.slice(keys.host('').length)));
  const serials = new Set([...etcdHosts.keys(), ...git.all().map((h) => h.Serial!)]);
  for (const serial of serials) {
    if (ignoredSerials.has(serial)) continue;
    const inGit = git.get(serial);
    if ((inGit ? encodeHost(inGit) : undefined) !== etcdHosts.get(serial)) differences.push(keys.host(serial));
    for (const name of HOST_SIDE_FILES) if (git.sideFile(serial, name) !== etcdFiles.get(`${serial}/${name}`)) differences.push(keys.file(serial, name));
  }
  for (const folder of RECORD_FOLDERS) {
    const inGit = git.records(folder);
    const names = new Set([...inGit.keys(), ...[...etcdRecords.keys()].filter((k) => k.startsWith(`${folder}/`)).map((k) => k.slice(folder.length + 1))]);
    for (const name of names) if (inGit.get(name) !== etcdRecords.get(`${folder}/${name}`)) differences.push(keys.record(folder, name));
  }
  return { differences, ignored, hosts: etcdHosts.size };
}

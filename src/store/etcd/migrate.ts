import type { Etcd3 } from 'etcd3';
import { encodeHost } from '../../core/host.ts';
import { encodeClusterJson } from '../cluster-json.ts';
import { GitStore } from '../git-store.ts';
import { HOST_SIDE_FILES, RECORD_FOLDERS, StoreError } from '../store.ts';
import type { EtcdKeys } from './keys.ts';
import { prefixEnd } from './txn.ts';

// `mayu migrate`: a single-node cluster directory's hosts into etcd, for replicas. The repo stays
// where it is and becomes the replicas' audit repo: its history stays, and the history writer
// continues it (it finds no etcd trailer in git and takes the change log from its start; the
// import itself writes no change log, so it makes no commits). Refuses a prefix that holds keys.

export interface MigrationResult {
  hosts: number;
  transactions: number;
}

export async function migrateToEtcd(o: { dir: string; client: Etcd3; keys: EtcdKeys; limitedProfiles: ReadonlySet<string> }): Promise<MigrationResult> {
  const { client, keys } = o;
  const taken = await client.kv.range({ key: Buffer.from(keys.prefix), range_end: prefixEnd(Buffer.from(keys.prefix)), count_only: true });
  if (Number(taken.count) > 0) throw new StoreError(`etcd already holds ${taken.count} keys under ${keys.prefix}: migrate into an empty prefix`);
  // Opening the store completes what a killed mayu left in the journal; nothing is committed.
  const git = await GitStore.open({ dir: o.dir, randomBytes: () => { throw new StoreError(`${o.dir}: no cluster.json token (not a mayu cluster repo?)`); } });
  try {
    const puts: [string, string][] = [];
    const addrs = new Map<string, string>();
    for (const host of git.all()) {
      const serial = host.Serial!;
      puts.push([keys.host(serial), encodeHost(host)]);
      for (const name of HOST_SIDE_FILES) {
        const text = git.sideFile(serial, name);
        if (text !== undefined) puts.push([keys.file(serial, name), text]);
      }
      if (host.InternalAddr) {
        const holder = addrs.get(host.InternalAddr);
        if (holder) throw new StoreError(`${serial} and ${holder} both have InternalAddr ${host.InternalAddr}: fix one before migrating`);
        addrs.set(host.InternalAddr, serial);
        puts.push([keys.addr(host.InternalAddr), serial]);
      }
    }
    // Admission records and the inventory (issue 17), key for file.
    for (const folder of RECORD_FOLDERS) for (const [name, text] of git.records(folder)) puts.push([keys.record(folder, name), text]);
    for (const profile of new Set(git.all().map((h) => h.Profile ?? ''))) if (o.limitedProfiles.has(profile)) puts.push([keys.quota(profile), '0']);
    // cluster.json last: a replica starting meanwhile sees no cluster yet rather than half of it.
    let transactions = 0;
    for (let i = 0; i < puts.length; i += 100) {
      await client.kv.txn({ success: puts.slice(i, i + 100).map(([k, v]) => ({ request_put: { key: Buffer.from(k), value: Buffer.from(v) } })) });
      transactions++;
    }
    const done = await client.if(keys.cluster, 'Create', '==', 0)
      .then(client.put(keys.cluster).value(encodeClusterJson(git.clusterConfig())), client.put(keys.historyStart).value('1'))
      .commit();
    if (!done.succeeded) throw new StoreError(`${keys.cluster} appeared in etcd during the migration: another mayu is using this prefix`);
    return { hosts: git.size(), transactions: transactions + 1 };
  } finally {
    await git.close();
  }
}

import { hostname } from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import type { MayuConfig } from '../../config/schema.ts';
import type { TimeZone } from '../../core/tzif.ts';
import { EtcdStore, type ExternalChange } from '../etcd-store.ts';
import type { StoreObserver } from '../store.ts';
import { connectEtcd } from './connect.ts';
import { HistoryWriter } from './history-writer.ts';

// One replica's etcd store: the client, the store (hosts in memory from etcd's watch) and its
// candidacy for writing the audit history. Closing the store closes the other two.

export interface EtcdReplicaOptions {
  config: NonNullable<MayuConfig['etcd']>;
  /** config.yaml's folder: relative TLS file names are next to it. */
  configDir: string;
  /** The cluster repo the history writer keeps; shared by the replicas. */
  clusterDir: string;
  replicaId?: string;
  limitedProfiles: ReadonlySet<string>;
  randomBytes: (n: number) => Uint8Array;
  now?: () => Date;
  zone?: TimeZone;
  observer?: StoreObserver;
  logger: Logger;
  onExternalChange?: (change: ExternalChange) => void;
  /** After each checkpoint of the repo this replica writes (the audit push). */
  onHistoryCheckpoint?: () => void;
}

export async function openEtcdReplica(o: EtcdReplicaOptions): Promise<{ store: EtcdStore; writer: HistoryWriter }> {
  const c = o.config;
  const file = (f: string | undefined) => f && path.resolve(o.configDir, f);
  const client = await connectEtcd({
    endpoints: c.endpoints,
    tls: c.tls && { caFile: file(c.tls.ca_file), certFile: file(c.tls.cert_file), keyFile: file(c.tls.key_file) },
    requestTimeoutMs: c.request_timeout_ms,
  });
  const log = o.logger.child({ component: 'etcd-store' });
  let store: EtcdStore;
  try {
    store = await EtcdStore.open({
      client,
      endpoints: c.endpoints,
      prefix: c.prefix,
      historyDir: o.clusterDir,
      limitedProfiles: o.limitedProfiles,
      randomBytes: o.randomBytes,
      now: o.now,
      observer: o.observer,
      onExternalChange: o.onExternalChange,
      onBadKey: (key, err) => log.error({ key, err: err.message }, 'key in etcd not written by mayu (or damaged): not served'),
    });
  } catch (err) {
    client.close();
    throw err;
  }
  store.own(() => client.close());
  const writer = new HistoryWriter({
    client,
    keys: store.keyLayout,
    dir: o.clusterDir,
    token: store.clusterConfig().DefaultEtcdClusterToken,
    replicaId: o.replicaId ?? `${hostname()}:${process.pid}`,
    zone: o.zone,
    leaseTtlSeconds: c.lease_ttl_seconds,
    onElected: () => log.info({ dir: o.clusterDir }, 'this replica writes the audit history now'),
    onStopped: (err) => log.warn({ err: err.message }, 'stopped writing the audit history; campaigning again'),
    onBadLog: (revision, err) => log.error({ revision, err: err.message }, 'change log revision not written by mayu (or damaged): not committed'),
    onCheckpoint: o.onHistoryCheckpoint,
  });
  store.own(() => writer.close());
  return { store, writer };
}

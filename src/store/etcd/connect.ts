import { readFile } from 'node:fs/promises';
import { Etcd3, type IKeyValue, type WatchBuilder, type Watcher } from 'etcd3';
import { StoreError } from '../store.ts';

// The etcd v3 client (npm etcd3, checked against etcd 3.4 by test/store-etcd-client-smoke.test.ts).

export interface EtcdConnection {
  endpoints: string[];
  /** PEM files for https endpoints: the CA that signed etcd's certificate, and a client certificate if etcd asks for one. */
  tls?: { caFile?: string; certFile?: string; keyFile?: string };
  /** Deadline of every unary call: an unreachable etcd fails a change in this time, never hangs it. */
  requestTimeoutMs?: number;
}

export async function connectEtcd(c: EtcdConnection): Promise<Etcd3> {
  const timeout = c.requestTimeoutMs ?? 3000;
  let credentials: { rootCertificate: Buffer; privateKey?: Buffer; certChain?: Buffer } | undefined;
  if (c.tls?.caFile) {
    const read = (f: string | undefined) => f === undefined ? undefined : readFile(f).catch((err: Error) => {
      throw new StoreError(`etcd TLS file ${f}: ${err.message}`);
    });
    credentials = { rootCertificate: (await read(c.tls.caFile))!, privateKey: await read(c.tls.keyFile), certChain: await read(c.tls.certFile) };
  }
  return new Etcd3({
    hosts: c.endpoints,
    credentials,
    dialTimeout: timeout,
    // A watch answer may carry one transaction of up to etcd's 1.5 MiB plus its header; grpc's
    // default limit (4 MiB) is met by unfragmented catch-ups (see fragmented()).
    grpcOptions: { 'grpc.max_receive_message_length': 64 << 20 },
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeout }),
  });
}

/**
 * A watch whose catch-up comes in answers etcd cuts to its request size (WatchCreateRequest
 * fragment). Without it, a watch started behind (a new history writer, a replica whose watch fell
 * behind) gets up to 1000 revisions in one answer: tens of MiB in a storm, past grpc's limit, and
 * the client reconnects from the same revision for ever. (npm etcd3 has no builder method for it.)
 */
export function fragmented(b: WatchBuilder): WatchBuilder {
  (b as unknown as { request: { fragment?: boolean } }).request.fragment = true;
  return b;
}

/**
 * For a watch of one key (one event per revision): after a broken stream, npm etcd3 resumes from
 * the revision of its last answer's header, which in a catch-up is etcd's newest, not that of the
 * last event it delivered; events in between would be skipped. This resumes after the last event.
 */
export function resumeAfterLastEvent(w: Watcher): Watcher {
  let last = 0;
  const seen = (kv: IKeyValue) => (last = Math.max(last, Number(kv.mod_revision)));
  w.on('put', seen);
  w.on('delete', seen);
  w.on('disconnected', () => {
    if (last > 0) (w as unknown as { request: { start_revision?: string } }).request.start_revision = String(last + 1);
  });
  return w;
}

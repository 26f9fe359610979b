import { readFile } from 'node:fs/promises';
import { Etcd3 } from 'etcd3';
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
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeout }),
  });
}

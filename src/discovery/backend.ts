import type { KeyRef } from './registry.ts';

// What the /etcd routes hand to either backend: mayu's own (internal) or the etcd proxy.

export type LeafRef = Exclude<KeyRef, { kind: 'dir' }>;

/** The request as parsed and checked by the routes, plus its raw parts for the proxy. */
export type DiscoveryRequest = (
  | { method: 'GET'; key: KeyRef; wait?: { index?: number; recursive: boolean } }
  | { method: 'PUT'; key: LeafRef; value: string; prevExist?: boolean }
  | { method: 'DELETE'; key: LeafRef }
) & {
  token: string;
  /** The path after `/etcd` (already checked) and the query string, unchanged. */
  rawPath: string;
  rawQuery: string;
  rawBody: string;
  contentType?: string;
};

/** An answer in etcd's form: status, headers (X-Etcd-Index, content type), body. */
export interface EtcdAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export interface DiscoveryBackend {
  readonly mode: 'internal' | 'proxy';
  /** Makes a new token of that size (durable before it resolves); the token. */
  createToken(size: number): Promise<string>;
  /** Answers a request; undefined when `signal` aborted it (the client is gone). */
  handle(req: DiscoveryRequest, signal: AbortSignal): Promise<EtcdAnswer | undefined>;
  close(): Promise<void>;
}

/** Refused for a reason that is the server's state, not the request (limits): 503 with the message. */
export class DiscoveryUnavailableError extends Error {}

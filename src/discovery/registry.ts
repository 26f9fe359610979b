// The etcd discovery protocol's state for one token, as pure functions (no I/O): what etcd's v2
// keys API (under /_etcd/registry/<token>, where 0.11 and discovery.etcd.io keep it) would answer
// and which event it would record. The service makes the state durable and wakes waiters.

/** Tokens as 0.11 and discovery.etcd.io make them (16 random bytes, hex). */
export const TOKEN = /^[a-f0-9]{32}$/;
/** etcd member ids are hex (types.ID); other clients may use names: a conservative alphabet. */
const MEMBER_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const MAX_CLUSTER_SIZE = 64;
/** A member's value: `name=peerURL[,peerURL...]`; a generous bound. */
export const MAX_VALUE_BYTES = 2048;
/** Members one token may hold (more than any sane size: re-registrations after wipes). */
export const MAX_MEMBERS = 128;
/** Events kept per token for `waitIndex` (etcd keeps 1000 for the whole store). */
export const EVENT_HISTORY = 100;

const REGISTRY = '/_etcd/registry';

export type KeyRef = { kind: 'dir' } | { kind: 'size' } | { kind: 'member'; id: string };

export interface EtcdNode {
  key: string;
  value?: string;
  dir?: true;
  nodes?: EtcdNode[];
  modifiedIndex: number;
  createdIndex: number;
}

export interface EtcdEvent {
  action: 'create' | 'set' | 'update' | 'delete';
  node: EtcdNode;
  prevNode?: EtcdNode;
}

interface Leaf {
  value: string;
  createdIndex: number;
  modifiedIndex: number;
}

export interface TokenState {
  token: string;
  /** This token's etcd index: the modifiedIndex of its last change. */
  index: number;
  createdIndex: number;
  size?: Leaf;
  /** In creation order. */
  members: Array<Leaf & { id: string }>;
  /** The last EVENT_HISTORY events, oldest first. */
  events: EtcdEvent[];
}

/** An etcd v2 error answer: `{"errorCode","message","cause","index"}` with its HTTP status. */
export class EtcdError extends Error {
  constructor(readonly status: number, readonly errorCode: number, message: string, readonly etcdCause: string, readonly index: number) {
    super(message);
  }
  body() {
    return { errorCode: this.errorCode, message: this.message, cause: this.etcdCause, index: this.index };
  }
}

/** Bad input mayu refuses before anything is read or written (etcd's "Invalid field", 209). */
export function invalidField(cause: string, index = 0): EtcdError {
  return new EtcdError(400, 209, 'Invalid field', cause, index);
}

export function keyPath(token: string, key: KeyRef): string {
  const dir = `${REGISTRY}/${token}`;
  if (key.kind === 'dir') return dir;
  return key.kind === 'size' ? `${dir}/_config/size` : `${dir}/${key.id}`;
}

/** A member key from one decoded path segment; path tricks, hidden and reserved names refused. */
export function parseMemberId(segment: string): string {
  if (!MEMBER_ID.test(segment)) {
    throw invalidField(`bad member key ${JSON.stringify(segment.slice(0, 80))}: use 1-64 characters of A-Z, a-z, 0-9, ".", "_", "-", starting with a letter or digit`);
  }
  return segment;
}

/** A cluster size: a decimal integer 1..MAX_CLUSTER_SIZE. */
export function parseSize(raw: string): number {
  if (!/^[0-9]{1,6}$/.test(raw) || Number(raw) < 1 || Number(raw) > MAX_CLUSTER_SIZE) {
    throw new SizeError(`bad size ${JSON.stringify(raw.slice(0, 40))}: a whole number from 1 to ${MAX_CLUSTER_SIZE}`);
  }
  return Number(raw);
}

export class SizeError extends Error {}

export function newToken(token: string, size: number): TokenState {
  const dir = { key: keyPath(token, { kind: 'dir' }), dir: true as const, modifiedIndex: 1, createdIndex: 1 };
  const sizeLeaf = { value: String(size), createdIndex: 2, modifiedIndex: 2 };
  return {
    token,
    index: 2,
    createdIndex: 1,
    size: sizeLeaf,
    members: [],
    events: [
      { action: 'create', node: dir },
      { action: 'create', node: leafNode(keyPath(token, { kind: 'size' }), sizeLeaf) },
    ],
  };
}

function leafNode(key: string, leaf: Leaf): EtcdNode {
  return { key, value: leaf.value, modifiedIndex: leaf.modifiedIndex, createdIndex: leaf.createdIndex };
}

function notFound(state: TokenState, key: KeyRef): EtcdError {
  return new EtcdError(404, 100, 'Key not found', keyPath(state.token, key), state.index);
}

/** An unknown token, as etcd answers it under 0.11's proxy. */
export function unknownToken(token: string): EtcdError {
  return new EtcdError(404, 100, 'Key not found', keyPath(token, { kind: 'dir' }), 0);
}

function leafOf(state: TokenState, key: KeyRef): Leaf | undefined {
  if (key.kind === 'size') return state.size;
  if (key.kind === 'member') return state.members.find((m) => m.id === key.id);
  return undefined;
}

/** GET without wait: the token (its members, `_config` hidden as etcd hides `_` keys) or one key. */
export function getNode(state: TokenState, key: KeyRef): EtcdNode {
  if (key.kind === 'dir') {
    const nodes = [...state.members]
      .sort((a, b) => a.createdIndex - b.createdIndex)
      .map((m) => leafNode(keyPath(state.token, { kind: 'member', id: m.id }), m));
    // etcd's field order: key, dir, nodes, modifiedIndex, createdIndex.
    return {
      key: keyPath(state.token, key), dir: true, ...(nodes.length > 0 ? { nodes } : {}),
      modifiedIndex: state.createdIndex, createdIndex: state.createdIndex,
    };
  }
  const leaf = leafOf(state, key);
  if (!leaf) throw notFound(state, key);
  return leafNode(keyPath(state.token, key), leaf);
}

export interface Change {
  state: TokenState;
  event: EtcdEvent;
  /** 201 for a key that did not exist, 200 otherwise (etcd's codes). */
  status: 200 | 201;
}

/**
 * PUT value: prevExist false = create (412 if it exists), true = update (404 if missing),
 * undefined = set. The size must stay a number the discovery client can read.
 */
export function put(state: TokenState, key: Exclude<KeyRef, { kind: 'dir' }>, value: string, prevExist?: boolean): Change {
  if (key.kind === 'size') parseSizeValue(value, state.index);
  if (Buffer.byteLength(value) > MAX_VALUE_BYTES) throw invalidField(`value too long: ${Buffer.byteLength(value)} bytes, limit ${MAX_VALUE_BYTES}`, state.index);
  const prev = leafOf(state, key);
  const path = keyPath(state.token, key);
  if (prevExist === false && prev) throw new EtcdError(412, 105, 'Key already exists', path, state.index);
  if (prevExist === true && !prev) throw notFound(state, key);
  if (!prev && key.kind === 'member' && state.members.length >= MAX_MEMBERS) {
    throw new EtcdError(409, 209, 'Too many members', `token ${state.token} holds ${MAX_MEMBERS} members, the limit: delete stale ones first`, state.index);
  }
  const index = state.index + 1;
  // etcd's set replaces the node (a new createdIndex); update keeps it.
  const leaf: Leaf = { value, modifiedIndex: index, createdIndex: prevExist === true && prev ? prev.createdIndex : index };
  const action = prevExist === false ? 'create' : prevExist === true ? 'update' : 'set';
  const event: EtcdEvent = { action, node: leafNode(path, leaf) };
  if (prev) event.prevNode = leafNode(path, prev);
  const next: TokenState = { ...state, index, events: withEvent(state.events, event) };
  if (key.kind === 'size') next.size = leaf;
  else next.members = prev ? state.members.map((m) => (m.id === key.id ? { ...leaf, id: key.id } : m)) : [...state.members, { ...leaf, id: key.id }];
  return { state: next, event, status: prev ? 200 : 201 };
}

function parseSizeValue(value: string, index: number): void {
  try {
    parseSize(value);
  } catch (err) {
    throw invalidField((err as Error).message, index);
  }
}

export function remove(state: TokenState, key: Exclude<KeyRef, { kind: 'dir' }>): Change {
  const prev = leafOf(state, key);
  if (!prev) throw notFound(state, key);
  const path = keyPath(state.token, key);
  const index = state.index + 1;
  const event: EtcdEvent = { action: 'delete', node: { key: path, modifiedIndex: index, createdIndex: prev.createdIndex }, prevNode: leafNode(path, prev) };
  const next: TokenState = { ...state, index, events: withEvent(state.events, event) };
  if (key.kind === 'size') delete next.size;
  else next.members = state.members.filter((m) => m.id !== key.id);
  return { state: next, event, status: 200 };
}

function withEvent(events: readonly EtcdEvent[], event: EtcdEvent): EtcdEvent[] {
  return [...events.slice(Math.max(0, events.length - EVENT_HISTORY + 1)), event];
}

/**
 * Does a watch on `watched` see this event? Recursive watches see the keys below, except hidden
 * ones (`_config/size`): etcd's live watchers skip them too, and the discovery client would
 * count a size change as a peer.
 */
export function eventMatches(event: EtcdEvent, watched: string, recursive: boolean): boolean {
  const key = event.node.key;
  if (key === watched) return true;
  if (!recursive || !key.startsWith(`${watched}/`)) return false;
  return !key.slice(watched.length).includes('/_');
}

/**
 * The first recorded event at index >= waitIndex the watch sees: the event, 'none' (wait for
 * the next one), or an EtcdError 401 when that part of the history is gone (etcd's answer).
 */
export function eventSince(state: TokenState, watched: string, recursive: boolean, waitIndex: number): EtcdEvent | 'none' {
  const oldest = state.events[0]?.node.modifiedIndex ?? state.index + 1;
  if (waitIndex < oldest && oldest > 1) {
    throw new EtcdError(400, 401, 'The event in requested index is outdated and cleared', `the requested history has been cleared [${oldest}/${waitIndex}]`, state.index);
  }
  return state.events.find((e) => e.node.modifiedIndex >= waitIndex && eventMatches(e, watched, recursive)) ?? 'none';
}

/** The token file's text (one JSON document per token). */
export function encodeToken(state: TokenState): string {
  return `${JSON.stringify({ version: 1, ...state })}\n`;
}

/** Reads a token file back; anything that is not a token file throws with the reason. */
export function decodeToken(text: string, expectedToken: string): TokenState {
  const raw = JSON.parse(text) as Partial<TokenState> & { version?: unknown };
  const int = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  const leafOk = (l: unknown): l is Leaf => typeof l === 'object' && l !== null
    && typeof (l as Leaf).value === 'string' && int((l as Leaf).createdIndex) && int((l as Leaf).modifiedIndex);
  if (raw.version !== 1) throw new Error('not a version 1 token file');
  if (raw.token !== expectedToken) throw new Error(`names token ${JSON.stringify(raw.token)}, not ${expectedToken}`);
  if (!int(raw.index) || !int(raw.createdIndex)) throw new Error('bad index');
  if (raw.size !== undefined && !leafOk(raw.size)) throw new Error('bad size');
  if (!Array.isArray(raw.members) || !raw.members.every((m) => leafOk(m) && typeof m.id === 'string' && MEMBER_ID.test(m.id))) throw new Error('bad members');
  if (!Array.isArray(raw.events) || !raw.events.every((e) => typeof e?.action === 'string' && typeof e.node?.key === 'string' && int(e.node.modifiedIndex))) {
    throw new Error('bad events');
  }
  return { token: raw.token, index: raw.index!, createdIndex: raw.createdIndex!, size: raw.size, members: raw.members, events: raw.events };
}

import type { Context, Middleware, Next } from 'koa';
import { DiscoveryUnavailableError, type DiscoveryBackend, type DiscoveryRequest, type LeafRef } from '../discovery/backend.ts';
import { EtcdUnreachableError } from '../discovery/etcd-proxy.ts';
import { EtcdError, invalidField, parseMemberId, parseSize, SizeError, TOKEN, type KeyRef } from '../discovery/registry.ts';
import { readBody } from './body.ts';
import { HttpError } from './errors.ts';

// `/etcd/...`: the etcd discovery service (discovery.etcd.io's protocol) as 0.11 routed it:
//   PUT /etcd/new[?size=N]                      → `<mayu>/etcd/<token>`
//   GET|PUT|DELETE /etcd/<token>/_config/size   → the cluster size
//   GET|PUT|DELETE /etcd/<token>/<member>       → a member (etcd v2 keys API, form body value=)
//   GET /etcd/<token>[?wait=true&waitIndex=N&recursive=true]
//   any other GET under /etcd                   → 301 to 0.11's docs page
// Paths are checked before a backend sees them: one member segment, no path tricks.

export interface DiscoveryRouteDeps {
  backend: DiscoveryBackend;
  /** `<mayu>/etcd`, the base of the URLs PUT /etcd/new answers. */
  baseUrl: string;
  /** Size of a token made without `size` (--etcd-quorum-size). */
  defaultSize: number;
}

/** Form bodies of etcd's client are a few hundred bytes. */
export const DISCOVERY_BODY_LIMIT = 8 * 1024;
const DOCS = 'https://github.com/giantswarm/mayu/blob/master/docs/etcd-discovery.md';
/** etcd features mayu's discovery does not implement: refused rather than silently ignored. */
const UNSUPPORTED = ['prevValue', 'prevIndex', 'ttl', 'dir', 'refresh'];

export function discoveryRoutes(deps: DiscoveryRouteDeps): Middleware {
  return async (ctx: Context, next: Next) => {
    if (ctx.path !== '/etcd' && !ctx.path.startsWith('/etcd/')) return next();
    const rest = ctx.path.slice('/etcd'.length);
    const parts = rest.split('/').slice(1);
    const method = ctx.method;

    if (rest === '/new' && method === 'PUT') return newToken(ctx, deps);
    if (!TOKEN.test(parts[0] ?? '')) {
      if (method === 'GET' || method === 'HEAD') return redirect(ctx);
      return next();
    }
    if (method !== 'GET' && method !== 'PUT' && method !== 'DELETE') return next();
    const token = parts[0]!;
    const keyParts = parts.slice(1);
    if (keyParts.length > 0 && keyParts.at(-1) === '') keyParts.pop(); // a trailing slash
    let key: KeyRef;
    try {
      key = parseKey(keyParts);
    } catch (err) {
      if (err instanceof EtcdError) return answerError(ctx, err);
      throw err;
    }
    if (key.kind === 'dir' && method !== 'GET') return next(); // 0.11 had no such route
    (ctx as { _matchedRoute?: string })._matchedRoute = `/etcd/:token${key.kind === 'dir' ? '' : key.kind === 'size' ? '/_config/size' : '/:member'}`;
    try {
      const req = await parseRequest(ctx, token, key, rest);
      await answer(ctx, deps.backend, req);
    } catch (err) {
      if (err instanceof EtcdError) return answerError(ctx, err);
      if (err instanceof DiscoveryUnavailableError) throw new HttpError(503, err.message);
      if (err instanceof EtcdUnreachableError) throw new HttpError(502, err.message);
      throw err;
    }
  };
}

function parseKey(parts: string[]): KeyRef {
  if (parts.length === 0) return { kind: 'dir' };
  const decoded = parts.map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      throw invalidField(`bad key: ${JSON.stringify(p.slice(0, 80))} is not a valid URL path segment`);
    }
  });
  if (decoded.length === 2 && decoded[0] === '_config' && decoded[1] === 'size') return { kind: 'size' };
  if (decoded.length !== 1) throw invalidField(`bad key ${JSON.stringify(decoded.join('/').slice(0, 80))}: a member key is one path segment (or _config/size)`);
  return { kind: 'member', id: parseMemberId(decoded[0]!) };
}

async function parseRequest(ctx: Context, token: string, key: KeyRef, rawPath: string): Promise<DiscoveryRequest> {
  const query = new URLSearchParams(ctx.querystring);
  const base = { token, rawPath, rawQuery: ctx.querystring, rawBody: '', contentType: ctx.get('content-type') || undefined };
  for (const name of UNSUPPORTED) {
    if (query.has(name)) throw invalidField(`"${name}" is not supported by mayu's etcd discovery`);
  }
  if (ctx.method === 'GET') {
    if (!isTrue(query.get('wait'))) return { ...base, method: 'GET', key };
    const rawIndex = query.get('waitIndex');
    let index: number | undefined;
    if (rawIndex !== null && rawIndex !== '') {
      if (!/^[0-9]{1,15}$/.test(rawIndex)) throw new EtcdError(400, 203, 'The given index in POST form is not a number', 'invalid value for "waitIndex"', 0);
      index = Number(rawIndex);
    }
    return { ...base, method: 'GET', key, wait: { index, recursive: isTrue(query.get('recursive')) } };
  }
  const leaf = key as LeafRef;
  // Read (and bounded: 413) for DELETE too, so nothing is left unread on a kept-alive connection.
  const rawBody = await readBody(ctx, DISCOVERY_BODY_LIMIT);
  if (ctx.method === 'DELETE') return { ...base, rawBody, method: 'DELETE', key: leaf };
  const form = isForm(ctx) ? new URLSearchParams(rawBody) : new URLSearchParams();
  const value = form.get('value') ?? query.get('value') ?? '';
  for (const name of UNSUPPORTED) {
    if (form.has(name)) throw invalidField(`"${name}" is not supported by mayu's etcd discovery`);
  }
  const prevExistRaw = query.get('prevExist') ?? form.get('prevExist');
  if (prevExistRaw !== null && prevExistRaw !== 'true' && prevExistRaw !== 'false') throw invalidField('invalid value for "prevExist"');
  const prevExist = prevExistRaw === null ? undefined : prevExistRaw === 'true';
  return { ...base, rawBody, method: 'PUT', key: leaf, value, prevExist };
}

async function answer(ctx: Context, backend: DiscoveryBackend, req: DiscoveryRequest): Promise<void> {
  const abort = new AbortController();
  // A long-poll whose client left is dropped (its waiter, or the request to etcd).
  const onClose = () => {
    if (!ctx.res.writableEnded) abort.abort();
  };
  ctx.res.once('close', onClose);
  try {
    const result = await backend.handle(req, abort.signal);
    if (!result) {
      (ctx.state as { log?: Record<string, unknown> }).log = { clientGone: true };
      ctx.respond = false;
      return;
    }
    ctx.status = result.status;
    ctx.set(result.headers);
    ctx.body = result.body;
  } finally {
    ctx.res.off('close', onClose);
  }
}

async function newToken(ctx: Context, deps: DiscoveryRouteDeps): Promise<void> {
  (ctx as { _matchedRoute?: string })._matchedRoute = '/etcd/new';
  // As Go's FormValue: the form body first, then the query.
  const body = await readBody(ctx, DISCOVERY_BODY_LIMIT);
  const raw = (isForm(ctx) ? new URLSearchParams(body).get('size') : null) ?? new URLSearchParams(ctx.querystring).get('size') ?? '';
  let size = deps.defaultSize;
  if (raw !== '') {
    try {
      size = parseSize(raw);
    } catch (err) {
      if (err instanceof SizeError) throw new HttpError(400, err.message);
      throw err;
    }
  }
  try {
    const token = await deps.backend.createToken(size);
    ctx.type = 'text/plain; charset=utf-8';
    ctx.body = `${deps.baseUrl}/${token}`;
  } catch (err) {
    if (err instanceof DiscoveryUnavailableError) throw new HttpError(503, err.message);
    if (err instanceof EtcdUnreachableError) throw new HttpError(502, err.message);
    throw err;
  }
}

function redirect(ctx: Context): void {
  (ctx as { _matchedRoute?: string })._matchedRoute = '/etcd(redirect)';
  ctx.status = 301;
  ctx.set('Location', DOCS);
  ctx.type = 'text/html; charset=utf-8';
  ctx.body = `<a href="${DOCS}">Moved Permanently</a>.\n\n`;
}

function answerError(ctx: Context, err: EtcdError): void {
  ctx.status = err.status;
  ctx.body = JSON.stringify(err.body());
  ctx.set({ 'Content-Type': 'application/json', 'X-Etcd-Index': String(err.index) });
}

function isTrue(v: string | null): boolean {
  return v === 'true';
}

function isForm(ctx: Context): boolean {
  const type = ctx.get('content-type');
  return type === '' || type.toLowerCase().startsWith('application/x-www-form-urlencoded');
}

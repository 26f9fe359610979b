import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { DiscoveryUnavailableError, type DiscoveryBackend, type DiscoveryRequest, type EtcdAnswer } from './backend.ts';

// 0.11's mode: /etcd/<path> is passed to <endpoint>/v2/keys/_etcd/registry/<path> of an etcd
// with the v2 API, method, query and body unchanged, and etcd's answer passed back. New tokens
// are made there as 0.11 made them (the token's folder, then _config/size, both prevExist=false).

/** etcd answers of a plain GET or PUT are small; a cap keeps a wrong endpoint from filling memory. */
const MAX_ANSWER_BYTES = 1024 * 1024;
/** Token creation (mayu's own requests) gives up after this; machines' long-polls never do. */
const CREATE_TIMEOUT_MS = 5_000;
/** Answer headers passed back (hop-by-hop and length headers are node's business). */
const PASSED_HEADERS = ['content-type', 'x-etcd-index', 'x-etcd-cluster-id', 'x-raft-index', 'x-raft-term'];

export class EtcdProxy implements DiscoveryBackend {
  readonly mode = 'proxy' as const;
  private readonly base: URL;

  /** `endpoint`: `host:port` as 0.11 took it, or a URL (http or https). */
  constructor(endpoint: string, private readonly randomBytes: (n: number) => Uint8Array) {
    this.base = endpointUrl(endpoint);
  }

  get endpoint(): string {
    return this.base.origin;
  }

  async createToken(size: number): Promise<string> {
    const token = Buffer.from(this.randomBytes(16)).toString('hex');
    await this.ensureToken(token, size, false);
    return token;
  }

  /** Makes the token in etcd unless it is there (`mustBeNew`: fail if it is). True when made. */
  async ensureToken(token: string, size: number, mayExist = true): Promise<boolean> {
    const dir = await this.send('PUT', `/${token}`, 'dir=true&prevExist=false', '');
    // 105: the key exists, 102: a file is there: an existing token keeps its size and members.
    if (dir.status === 412 && mayExist) return false;
    if (dir.status !== 201) throw new DiscoveryUnavailableError(`Unable to store token in etcd: ${dir.status} ${dir.body.slice(0, 200)}`);
    const sizeAnswer = await this.send('PUT', `/${token}/_config/size`, 'prevExist=false', `value=${size}`);
    if (sizeAnswer.status !== 201) throw new DiscoveryUnavailableError(`Unable to store token in etcd: ${sizeAnswer.status} ${sizeAnswer.body.slice(0, 200)}`);
    return true;
  }

  async handle(req: DiscoveryRequest, signal: AbortSignal): Promise<EtcdAnswer | undefined> {
    try {
      return await this.send(req.method, req.rawPath, req.rawQuery, req.method === 'GET' ? '' : req.rawBody, req.contentType, signal);
    } catch (err) {
      if (signal.aborted) return undefined;
      throw err;
    }
  }

  async close(): Promise<void> {}

  private send(method: string, rawPath: string, rawQuery: string, body: string, contentType?: string, signal?: AbortSignal): Promise<EtcdAnswer> {
    // mayu's own requests (no client signal) must not hang on an etcd that does not answer.
    signal ??= AbortSignal.timeout(CREATE_TIMEOUT_MS);
    const url = new URL(`${this.base.pathname.replace(/\/+$/, '')}/v2/keys/_etcd/registry${rawPath}`, this.base);
    url.search = rawQuery;
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const headers: Record<string, string> = { 'Content-Length': String(Buffer.byteLength(body)) };
    if (body !== '' || contentType) headers['Content-Type'] = contentType ?? 'application/x-www-form-urlencoded';
    return new Promise((resolve, reject) => {
      const req = request(url, { method, headers, signal }, (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_ANSWER_BYTES) {
            req.destroy(new Error(`etcd at ${this.base.origin} answered more than ${MAX_ANSWER_BYTES} bytes`));
            return;
          }
          chunks.push(c);
        });
        res.on('end', () => {
          const passed: Record<string, string> = {};
          for (const h of PASSED_HEADERS) {
            const v = res.headers[h];
            if (typeof v === 'string') passed[h] = v;
          }
          resolve({ status: res.statusCode ?? 502, headers: passed, body: Buffer.concat(chunks).toString('utf8') });
        });
        res.on('error', reject);
      });
      req.on('error', (err) => reject(new EtcdUnreachableError(`etcd at ${this.base.origin} unreachable: ${err.message}`)));
      req.end(body);
    });
  }
}

/** The etcd behind the proxy did not answer: a 502 for the client (etcd's client retries 5xx). */
export class EtcdUnreachableError extends Error {}

export function endpointUrl(endpoint: string): URL {
  const withScheme = /^[a-z]+:\/\//i.test(endpoint) ? endpoint : `http://${endpoint}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new Error(`--etcd-endpoint ${JSON.stringify(endpoint)}: expected host:port (as mayu 0.11) or an http(s) URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(`--etcd-endpoint ${JSON.stringify(endpoint)}: only http and https are supported`);
  }
  return url;
}

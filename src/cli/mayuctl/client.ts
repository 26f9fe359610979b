// HTTP client for mayu's admin API (protocol section 2), on node:http(s) because fetch cannot
// be told which CA to trust. Every PUT body is built by request-body.ts; this module only moves
// bytes and turns failures into errors.
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface ClientOptions {
  host: string;
  port: number;
  /** 0.11 defaulted to https; our server speaks plain HTTP, so https is opt-in. */
  tls: boolean;
  /** Sent as "Authorization: Bearer <token>" (admin token, or a host's report token for boot-complete). */
  token?: string;
  /** PEM CA(s) to trust for https instead of the system ones. */
  ca?: string;
  /** Receives one line per request / answer when --debug is on. */
  debug?: (line: string) => void;
  timeoutMs?: number;
}

/** The server answered with a status above 399 (0.11's threshold). */
export class HttpStatusError extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
  ) {
    super(`invalid status code '${status}'`);
  }
}

/** No answer at all: refused, unresolvable, reset, timed out, TLS failure. */
export class ConnectionError extends Error {}

/** The server answered 2xx with something that is not what the route promises. */
export class BadAnswerError extends Error {}

export function baseUrl(options: Pick<ClientOptions, 'host' | 'port' | 'tls'>): string {
  const host = options.host.includes(':') && !options.host.startsWith('[') ? `[${options.host}]` : options.host;
  return `${options.tls ? 'https' : 'http'}://${host}:${options.port}`;
}

export class MayuClient {
  readonly base: string;

  constructor(private readonly options: ClientOptions) {
    this.base = baseUrl(options);
  }

  /** GET /admin/hosts → the raw JSON array (items are decoded by the caller). */
  async listHosts(): Promise<unknown[]> {
    const data = await this.getJson('/admin/hosts');
    // Go's encoding/json writes a nil slice as null.
    if (data === null) return [];
    if (!Array.isArray(data)) throw new BadAnswerError(`${this.base}/admin/hosts: expected a JSON array`);
    return data;
  }

  /** GET /admin/host/<serial>/history → the raw JSON answer. */
  history(serial: string): Promise<unknown> {
    return this.getJson(`/admin/host/${encodeURIComponent(serial)}/history`);
  }

  /** GET /admin/host/<serial>/render/<kind>[?profile=]: the document as mayu would serve it. */
  render(serial: string, kind: string, profile?: string): Promise<string> {
    const query = profile === undefined ? '' : `?profile=${encodeURIComponent(profile)}`;
    return this.request('GET', `/admin/host/${encodeURIComponent(serial)}/render/${encodeURIComponent(kind)}${query}`);
  }

  /**
   * GET /admin/events: calls `onEvent` with the data of every server-sent event until the server
   * closes the stream (resolves) or the connection fails (rejects). Heartbeat comments are skipped.
   */
  async streamEvents(onEvent: (data: string) => void): Promise<void> {
    const url = `${this.base}/admin/events`;
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    if (this.options.token) headers['authorization'] = `Bearer ${this.options.token}`;
    this.options.debug?.(`> GET ${url}`);
    let res: IncomingMessage;
    try {
      res = await new Promise<IncomingMessage>((resolve, reject) => {
        const options = { headers, ...(this.options.ca ? { ca: this.options.ca } : {}) };
        const req = url.startsWith('https:') ? httpsRequest(url, options, resolve) : httpRequest(url, options, resolve);
        req.on('error', reject);
        req.end();
      });
    } catch (err) {
      throw new ConnectionError(`cannot reach mayu at ${url}: ${describeError(err)}`);
    }
    this.options.debug?.(`< ${res.statusCode} event stream`);
    res.setEncoding('utf8');
    if ((res.statusCode ?? 0) > 399) {
      let text = '';
      for await (const chunk of res) text += chunk;
      throw new HttpStatusError(res.statusCode ?? 0, text.trim());
    }
    let pending = '';
    try {
      for await (const chunk of res as AsyncIterable<string>) {
        pending += chunk;
        let end: number;
        while ((end = pending.indexOf('\n\n')) >= 0) {
          const block = pending.slice(0, end);
          pending = pending.slice(end + 2);
          const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(l.startsWith('data: ') ? 6 : 5));
          if (data.length > 0) onEvent(data.join('\n'));
        }
      }
    } catch (err) {
      throw new ConnectionError(`event stream from ${url} broke: ${describeError(err)}`);
    }
  }

  /** PUT /admin/host/<serial>/<route> with a JSON body; mayu answers 202. `token` replaces the client's. */
  async putHost(serial: string, route: string, body: string, token?: string): Promise<void> {
    await this.request('PUT', `/admin/host/${encodeURIComponent(serial)}/${route}`, body, token);
  }

  /** GET /admin/host/<serial>/install-failures → the raw JSON answer. */
  installFailures(serial: string): Promise<unknown> {
    return this.getJson(`/admin/host/${encodeURIComponent(serial)}/install-failures`);
  }

  /** GET /admin/host/<serial>/power-hook → the raw JSON answer. */
  powerHook(serial: string): Promise<unknown> {
    return this.getJson(`/admin/host/${encodeURIComponent(serial)}/power-hook`);
  }

  /** GET /admin/stuck → the raw JSON answer (README "Stuck installs"). */
  stuck(): Promise<unknown> {
    return this.getJson('/admin/stuck');
  }

  /** DELETE /admin/host/<serial>; mayu answers 204 once the deletion is committed. */
  async deleteHost(serial: string): Promise<void> {
    await this.request('DELETE', `/admin/host/${encodeURIComponent(serial)}`);
  }

  /** Any admin request (admission verbs, src/cli/mayuctl/admission-commands.ts): the answer's text. */
  admin(method: 'GET' | 'PUT' | 'DELETE', path: string, body?: string): Promise<string> {
    return this.request(method, `/admin${path}`, body);
  }

  private async getJson(path: string): Promise<unknown> {
    const text = await this.request('GET', path);
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new BadAnswerError(`${this.base}${path}: answer is not JSON`);
    }
  }

  private async request(method: 'GET' | 'PUT' | 'DELETE', path: string, body?: string, token = this.options.token): Promise<string> {
    const url = `${this.base}${path}`;
    const debug = this.options.debug;
    debug?.(`> ${method} ${url}${body === undefined ? '' : ` ${body}`}`);
    const headers: Record<string, string> = {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (token) headers['authorization'] = `Bearer ${token}`;
    let answer: { status: number; text: string };
    try {
      answer = await send(url, { method, headers, body, ca: this.options.ca, timeoutMs: this.options.timeoutMs ?? 30_000 });
    } catch (err) {
      throw new ConnectionError(`cannot reach mayu at ${url}: ${describeError(err)}`);
    }
    debug?.(`< ${answer.status} ${answer.text.length} bytes`);
    if (answer.status > 399) throw new HttpStatusError(answer.status, answer.text.trim());
    return answer.text;
  }
}

interface SendOptions {
  method: string;
  headers: Record<string, string>;
  body?: string;
  ca?: string;
  timeoutMs: number;
}

/** One request, the whole answer as text; rejects on socket, TLS and timeout errors. */
function send(url: string, o: SendOptions): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const options = { method: o.method, headers: o.headers, timeout: o.timeoutMs, ...(o.ca ? { ca: o.ca } : {}) };
    const onResponse = (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    };
    const req = url.startsWith('https:') ? httpsRequest(url, options, onResponse) : httpRequest(url, options, onResponse);
    req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
    req.end(o.body);
  });
}

/** The socket or TLS error's own text ("connect ECONNREFUSED 127.0.0.1:4080", "self-signed certificate"). */
function describeError(err: unknown): string {
  return err instanceof Error ? err.message || String((err as NodeJS.ErrnoException).code) : String(err);
}

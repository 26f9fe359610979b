// HTTP client for mayu's admin API (protocol section 2), using fetch. Every PUT body is
// built by request-body.ts; this module only moves bytes and turns failures into errors.

export interface ClientOptions {
  host: string;
  port: number;
  /** 0.11 defaulted to https; our server speaks plain HTTP, so https is opt-in. */
  tls: boolean;
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

  /** PUT /admin/host/<serial>/<route> with a JSON body; mayu answers 202. */
  async putHost(serial: string, route: string, body: string): Promise<void> {
    await this.request('PUT', `/admin/host/${encodeURIComponent(serial)}/${route}`, body);
  }

  private async getJson(path: string): Promise<unknown> {
    const text = await this.request('GET', path);
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new BadAnswerError(`${this.base}${path}: answer is not JSON`);
    }
  }

  private async request(method: 'GET' | 'PUT', path: string, body?: string): Promise<string> {
    const url = `${this.base}${path}`;
    const debug = this.options.debug;
    debug?.(`> ${method} ${url}${body === undefined ? '' : ` ${body}`}`);
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        body,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        redirect: 'manual',
        signal: AbortSignal.timeout(this.options.timeoutMs ?? 30_000),
      });
    } catch (err) {
      throw new ConnectionError(`cannot reach mayu at ${url}: ${describeFetchError(err)}`);
    }
    const text = await response.text();
    debug?.(`< ${response.status} ${text.length} bytes`);
    if (response.status > 399) throw new HttpStatusError(response.status, text.trim());
    return text;
  }
}

/** fetch hides the socket error in `cause`; the code (ECONNREFUSED, ...) is what helps. */
function describeFetchError(err: unknown): string {
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) return 'timed out';
  const cause = err instanceof Error ? (err.cause as { code?: unknown; message?: unknown } | undefined) : undefined;
  if (cause && typeof cause.message === 'string' && cause.message !== '') return cause.message;
  if (cause && typeof cause.code === 'string') return cause.code;
  return err instanceof Error ? err.message : String(err);
}

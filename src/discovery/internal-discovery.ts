import { DiscoveryUnavailableError, type DiscoveryBackend, type DiscoveryRequest, type EtcdAnswer } from './backend.ts';
import {
  EtcdError, eventMatches, eventSince, getNode, keyPath, newToken, put, remove, unknownToken,
  type Change, type EtcdEvent, type TokenState,
} from './registry.ts';
import { TokenFiles } from './token-files.ts';

// mayu's own etcd discovery service: the state of registry.ts, made durable by TokenFiles before
// any answer, with etcd's long-poll watches. Changes to one token are applied one at a time.

export interface InternalDiscoveryOptions {
  clusterDir: string;
  randomBytes: (n: number) => Uint8Array;
  /** Tokens mayu keeps at most (PUT /etcd/new beyond it: 503). */
  maxTokens?: number;
  /** Long-polls open at once at most (beyond it: 503). */
  maxWaiters?: number;
}

interface Waiter {
  token: string;
  watched: string;
  recursive: boolean;
  fromIndex: number;
  deliver(event: EtcdEvent): void;
}

export class InternalDiscovery implements DiscoveryBackend {
  readonly mode = 'internal' as const;
  private readonly chains = new Map<string, Promise<unknown>>();
  private readonly waiters = new Set<Waiter>();

  private constructor(
    private readonly files: TokenFiles,
    private readonly tokens: Map<string, TokenState>,
    private readonly opts: Required<InternalDiscoveryOptions>,
  ) {}

  static async open(options: InternalDiscoveryOptions): Promise<InternalDiscovery> {
    const { files, tokens } = await TokenFiles.open(options.clusterDir);
    return new InternalDiscovery(files, new Map(tokens.map((t) => [t.token, t])), { maxTokens: 10_000, maxWaiters: 1_000, ...options });
  }

  get tokenCount(): number {
    return this.tokens.size;
  }

  /** The cluster's default token must work at once: made with `size` unless it exists. */
  async ensureToken(token: string, size: number): Promise<boolean> {
    return this.serially(token, async () => {
      if (this.tokens.has(token)) return false;
      const state = newToken(token, size);
      await this.files.write(state);
      this.tokens.set(token, state);
      return true;
    });
  }

  async createToken(size: number): Promise<string> {
    if (this.tokens.size >= this.opts.maxTokens) {
      throw new DiscoveryUnavailableError(`Unable to store token: mayu keeps at most ${this.opts.maxTokens} etcd discovery tokens`);
    }
    const token = Buffer.from(this.opts.randomBytes(16)).toString('hex');
    await this.ensureToken(token, size);
    return token;
  }

  async handle(req: DiscoveryRequest, signal: AbortSignal): Promise<EtcdAnswer | undefined> {
    try {
      if (req.method === 'GET') return await this.get(req, signal);
      const { key } = req;
      return await this.serially(req.token, async () => {
        const state = this.tokens.get(req.token);
        if (!state) throw unknownToken(req.token);
        const change: Change = req.method === 'PUT' ? put(state, key, req.value, req.prevExist) : remove(state, key);
        await this.files.write(change.state);
        this.tokens.set(req.token, change.state);
        this.notify(req.token, change.event);
        return json(change.status, change.event, change.state.index);
      });
    } catch (err) {
      if (err instanceof EtcdError) return json(err.status, err.body(), err.index);
      throw err;
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.chains.values()].map((c) => c.catch(() => undefined)));
  }

  private async get(req: Extract<DiscoveryRequest, { method: 'GET' }>, signal: AbortSignal): Promise<EtcdAnswer | undefined> {
    const state = this.tokens.get(req.token);
    if (!state) throw unknownToken(req.token);
    if (!req.wait) return json(200, { action: 'get', node: getNode(state, req.key) }, state.index);
    const watched = keyPath(req.token, req.key);
    const { recursive } = req.wait;
    // etcd's X-Etcd-Index on a watch is the index when the watch began.
    const startIndex = state.index;
    if (req.wait.index !== undefined) {
      const found = eventSince(state, watched, recursive, req.wait.index);
      if (found !== 'none') return json(200, found, startIndex);
    }
    if (this.waiters.size >= this.opts.maxWaiters) {
      throw new DiscoveryUnavailableError(`too many etcd discovery watches open (${this.opts.maxWaiters})`);
    }
    const event = await new Promise<EtcdEvent | undefined>((resolve) => {
      const waiter: Waiter = {
        token: req.token, watched, recursive, fromIndex: Math.max(req.wait!.index ?? 0, startIndex + 1),
        deliver: (e) => {
          this.waiters.delete(waiter);
          signal.removeEventListener('abort', gone);
          resolve(e);
        },
      };
      const gone = () => {
        this.waiters.delete(waiter);
        resolve(undefined);
      };
      if (signal.aborted) return resolve(undefined);
      signal.addEventListener('abort', gone, { once: true });
      this.waiters.add(waiter);
    });
    return event && json(200, event, startIndex);
  }

  private notify(token: string, event: EtcdEvent): void {
    for (const w of [...this.waiters]) {
      if (w.token === token && event.node.modifiedIndex >= w.fromIndex && eventMatches(event, w.watched, w.recursive)) w.deliver(event);
    }
  }

  /** Runs `fn` after the token's earlier changes: one writer per token file, in order. */
  private serially<T>(token: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.chains.get(token) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const settled = run.catch(() => undefined);
    this.chains.set(token, settled);
    void settled.then(() => {
      if (this.chains.get(token) === settled) this.chains.delete(token);
    });
    return run;
  }
}

function json(status: number, body: unknown, index: number): EtcdAnswer {
  return { status, headers: { 'Content-Type': 'application/json', 'X-Etcd-Index': String(index) }, body: JSON.stringify(body) };
}

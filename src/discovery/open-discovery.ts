import type { Logger } from 'pino';
import type { DiscoveryBackend } from './backend.ts';
import { EtcdProxy } from './etcd-proxy.ts';
import { InternalDiscovery } from './internal-discovery.ts';
import { MAX_CLUSTER_SIZE } from './registry.ts';

/** The etcd discovery flags (0.11's names), as ServerOptions carries them. */
export interface EtcdDiscoveryOptions {
  /** --use-internal-etcd-discovery (default true): mayu serves /etcd/... itself or via `endpoint`. */
  internal: boolean;
  /** --etcd-endpoint: proxy /etcd/... to this etcd (v2 API), as 0.11 did; absent: mayu's own state. */
  endpoint?: string;
  /** --etcd-quorum-size (default 3): size of the default token and of PUT /etcd/new without size. */
  quorumSize?: number;
  /** --etcd-discovery: an external service's base URL (with internal false). */
  discoveryUrl?: string;
}

export interface OpenedDiscovery {
  /** Serves /etcd/...; undefined with an external service. */
  backend?: DiscoveryBackend;
  /** The base URL the templates name; undefined: `<mayu>/etcd`. */
  externalUrl?: string;
  quorumSize: number;
}

export class DiscoveryOptionsError extends Error {}

/**
 * Checks the flags as 0.11 did, opens the backend and makes sure the cluster's default token
 * exists there (so machines installed with the default templates form their etcd at once).
 */
export async function openDiscovery(o: {
  options: EtcdDiscoveryOptions | undefined;
  clusterDir: string;
  defaultToken: string;
  randomBytes: (n: number) => Uint8Array;
  logger: Logger;
}): Promise<OpenedDiscovery> {
  const options = o.options ?? { internal: true };
  const quorumSize = options.quorumSize ?? 3;
  if (!Number.isInteger(quorumSize) || quorumSize < 1 || quorumSize > MAX_CLUSTER_SIZE) {
    throw new DiscoveryOptionsError(`--etcd-quorum-size ${quorumSize}: a whole number from 1 to ${MAX_CLUSTER_SIZE}`);
  }
  if (!options.internal) {
    // 0.11's own checks, with its words.
    if (!options.discoveryUrl) throw new DiscoveryOptionsError('The internal etcd discovery is deactivated and no external discovery url is given (--etcd-discovery)');
    return { externalUrl: options.discoveryUrl.replace(/\/+$/, ''), quorumSize };
  }
  if (options.discoveryUrl) {
    throw new DiscoveryOptionsError('External etcd discovery url is set and internal etcd discovery is activated. Please choose only one (--use-internal-etcd-discovery=false --etcd-discovery URL)');
  }
  const log = o.logger.child({ component: 'etcd-discovery' });
  if (options.endpoint) {
    const proxy = new EtcdProxy(options.endpoint, o.randomBytes);
    // Best effort: an etcd that is down must not keep mayu from provisioning; the token is
    // made when it answers (0.11 only made it on a cluster's first start).
    const ensure = async (attempt: number): Promise<void> => {
      try {
        const made = await proxy.ensureToken(o.defaultToken, quorumSize);
        log.info({ endpoint: proxy.endpoint, token: o.defaultToken, made }, made ? 'default discovery token made in etcd' : 'default discovery token found in etcd');
      } catch (err) {
        log.warn({ err, endpoint: proxy.endpoint, attempt }, 'cannot make the default discovery token in etcd yet; retrying');
        if (!stopped) timer = setTimeout(() => void ensure(attempt + 1), Math.min(30_000, 500 * 2 ** attempt));
      }
    };
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    await ensure(0);
    const close = proxy.close.bind(proxy);
    proxy.close = async () => {
      stopped = true;
      clearTimeout(timer);
      await close();
    };
    return { backend: proxy, quorumSize };
  }
  const internal = await InternalDiscovery.open({ clusterDir: o.clusterDir, randomBytes: o.randomBytes });
  if (await internal.ensureToken(o.defaultToken, quorumSize)) log.info({ token: o.defaultToken, size: quorumSize }, 'default discovery token made');
  log.info({ tokens: internal.tokenCount }, 'etcd discovery served by mayu');
  return { backend: internal, quorumSize };
}

import type { MayuConfig } from '../config/schema.ts';
import { encodeHost, type Host } from '../core/host.ts';
import type { Renderer } from './renderer.ts';
import { buildView, type ViewOptions } from './view.ts';

/** What the machine-facing routes serve; each throws RenderError and returns the whole text. */
export interface Outputs {
  /** The installer boot script (for every machine that is not installed). */
  ipxeScript(): string;
  ipxeChainScript(): string;
  ipxeLocalBoot(host: Host): string;
  firstStageScript(host: Host): string;
  cloudConfig(host: Host): string;
  ignition(host: Host): string;
}

/** Documents kept per kind; a boot storm re-asks for the same host's document a few times. */
const CACHED_PER_KIND = 1024;

/**
 * A rendered document depends only on the host and this server's fixed config, templates and
 * URL, so it is cached by the host's conf.json encoding: a machine that retries, or POSTs the
 * same hardware data again, gets the same bytes without a new render and YAML/Ignition check.
 */
class RenderCache {
  private readonly docs = new Map<string, string>();

  get(host: Host, render: () => string): string {
    const key = encodeHost(host);
    const hit = this.docs.get(key);
    if (hit !== undefined) {
      this.docs.delete(key);
      this.docs.set(key, hit);
      return hit;
    }
    const doc = render();
    this.docs.set(key, doc);
    if (this.docs.size > CACHED_PER_KIND) this.docs.delete(this.docs.keys().next().value!);
    return doc;
  }
}

/** Binds the renderer to this server's config and URL: host in, whole document out. */
export interface OutputDeps {
  renderer: Renderer;
  config: MayuConfig;
  mayuUrl: string;
  version: string;
  useIgnition: boolean;
  reportTokenOf: (host: Host) => string;
  tlsUrl?: string;
  caPem?: string;
  /** External etcd discovery base (--etcd-discovery); default `<mayuUrl>/etcd`. */
  etcdDiscoveryUrl?: string;
  /** [0, 1), for the iPXE scripts' retry wait; default Math.random. */
  random?: () => number;
}

export function createOutputs(deps: OutputDeps): Outputs {
  const { renderer, config } = deps;
  const opts: ViewOptions = {
    mayuUrl: deps.mayuUrl,
    mayuVersion: deps.version,
    useIgnition: deps.useIgnition,
    reportTokenOf: deps.reportTokenOf,
    tlsUrl: deps.tlsUrl,
    caPem: deps.caPem,
    etcdDiscoveryUrl: deps.etcdDiscoveryUrl,
  };
  const view = (host?: Host) => buildView(host, config, opts);
  const cached = { localBoot: new RenderCache(), firstStage: new RenderCache(), cloudConfig: new RenderCache(), ignition: new RenderCache() };
  // The iPXE scripts carry their retry wait (iPXE cannot read Retry-After): drawn per answer
  // between limits.retry_after_seconds and twice that, so machines refused together come back
  // apart. One rendering per wait, made on first use (a broken template is a 500, not a crash).
  const base = config.limits?.retry_after_seconds ?? 5;
  const random = deps.random ?? Math.random;
  const ipxeScripts = new Map<number, string>();
  const chainScripts = new Map<number, string>();
  const withWait = (cache: Map<number, string>, render: (v: ReturnType<typeof view>) => string) => {
    const seconds = base + Math.floor(random() * (base + 1));
    let doc = cache.get(seconds);
    if (doc === undefined) cache.set(seconds, (doc = render(buildView(undefined, config, { ...opts, retrySeconds: seconds }))));
    return doc;
  };
  return {
    ipxeScript: () => withWait(ipxeScripts, (v) => renderer.ipxeScript(v)),
    ipxeChainScript: () => withWait(chainScripts, (v) => renderer.ipxeChainScript(v)),
    ipxeLocalBoot: (host) => cached.localBoot.get(host, () => renderer.ipxeLocalBoot(view(host))),
    firstStageScript: (host) => cached.firstStage.get(host, () => renderer.firstStageScript(view(host))),
    cloudConfig: (host) => cached.cloudConfig.get(host, () => renderer.cloudConfig(view(host))),
    ignition: (host) => cached.ignition.get(host, () => renderer.ignition(view(host))),
  };
}

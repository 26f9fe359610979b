import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { MayuConfig } from '../config/schema.ts';
import type { Host } from '../core/host.ts';
import type { Renderer } from '../render/renderer.ts';
import { buildView } from '../render/view.ts';
import { writeFileAtomic } from '../store/durable-fs.ts';

// dnsmasq.conf is generated from the template and the hosts: MACs of installed/running hosts are
// ignored by DHCP so those machines boot from disk. Regenerations are serialized and coalesced:
// a burst of state changes gives one write after the current one.

export function installedMacs(hosts: Iterable<Readonly<Host>>): string[] {
  const macs = new Set<string>();
  for (const h of hosts) {
    if (h.State === 'installed' || h.State === 'running') for (const m of h.MacAddresses ?? []) macs.add(m);
  }
  return [...macs].sort();
}

export interface DnsmasqConfWriterDeps {
  file: string;
  renderer: Renderer;
  config: MayuConfig;
  tftpRoot: string;
  store: { scan(): Iterable<Readonly<Host>> };
  logger: Logger;
  version: string;
}

export class DnsmasqConfWriter {
  private port: number | undefined;
  private running: Promise<void> | undefined;
  private again = false;

  constructor(private readonly deps: DnsmasqConfWriterDeps) {}

  /** Writes now (at start, once the HTTP port is known). */
  async write(port: number): Promise<void> {
    this.port = port;
    await this.render();
  }

  /** Regenerate soon; never throws (a failure is logged and the previous file stays). */
  schedule(): void {
    if (this.port === undefined) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = (async () => {
      do {
        this.again = false;
        try {
          await this.render();
        } catch (err) {
          this.deps.logger.error({ err, file: this.deps.file }, 'dnsmasq.conf not regenerated');
        }
      } while (this.again);
      this.running = undefined;
    })();
  }

  async close(): Promise<void> {
    await this.running;
  }

  private async render(): Promise<void> {
    const { config, file } = this.deps;
    const mayuUrl = `http://${config.network.bind_addr}:${this.port}`;
    const view = buildView(undefined, config, { mayuUrl, mayuVersion: this.deps.version });
    const macs = installedMacs(this.deps.store.scan());
    const text = this.deps.renderer.dnsmasqConf({ ...view, installed_macs: macs, tftp_root: this.deps.tftpRoot, http_port: this.port! });
    await mkdir(path.dirname(file), { recursive: true });
    await writeFileAtomic(file, text);
    this.deps.logger.debug({ file, installedMacs: macs.length }, 'dnsmasq.conf written');
  }
}

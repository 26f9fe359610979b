import type { Logger } from 'pino';
import type { Host } from '../core/host.ts';
import { writeFileAtomic } from '../fs/durable-fs.ts';
import { renderDhcpHostsfile } from './dhcp-hostsfile.ts';

// Keeps dnsmasq's hostsfile in step with the hosts. Writes are serialized and coalesced: a burst
// of changes gives one write after the current one. Each write replaces the file atomically (dnsmasq
// never reads half a file) and is followed by onWritten (SIGHUP); unchanged content writes nothing.

export interface HostsfileWriterDeps {
  file: string;
  hosts: { scan(): Iterable<Readonly<Host>> };
  logger: Logger;
  /** Called after each write that changed the file. */
  onWritten: () => void;
}

export class HostsfileWriter {
  private written: string | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private closed = false;

  constructor(private readonly deps: HostsfileWriterDeps) {}

  /** Writes now (at start, before dnsmasq reads the file); throws on failure. */
  async write(): Promise<void> {
    await this.render();
  }

  /** Rewrite soon; never throws (a failure is logged and the previous file stays). */
  schedule(): void {
    if (this.closed) return;
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
          this.deps.logger.error({ err, file: this.deps.file }, 'dnsmasq hostsfile not rewritten');
        }
      } while (this.again);
      this.running = undefined;
    })();
  }

  /** Finishes the writes under way and asked for; later schedule() calls do nothing. */
  async close(): Promise<void> {
    this.closed = true;
    await this.running;
  }

  private async render(): Promise<void> {
    const { text, invalidMacs } = renderDhcpHostsfile(this.deps.hosts.scan());
    if (text === this.written) return;
    if (invalidMacs.length) this.deps.logger.warn({ invalidMacs }, 'MAC addresses left out of the dnsmasq hostsfile');
    // Not fsync'd: the file is derived from the store and rewritten at every start.
    await writeFileAtomic(this.deps.file, text, false);
    this.written = text;
    this.deps.logger.debug({ file: this.deps.file, lines: text.split('\n').length - 2 }, 'dnsmasq hostsfile written');
    this.deps.onWritten();
  }
}

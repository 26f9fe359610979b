import { canonicalHost, cloneHost, type Host } from '../core/host.ts';
import type { Step } from '../core/host-changes.ts';

/** The current hosts in memory, with undo for changes whose write failed. */
export class HostTable {
  private readonly hosts = new Map<string, Host>();

  get(serial: string): Host | undefined {
    const h = this.hosts.get(serial);
    return h && cloneHost(h);
  }

  all(): Host[] {
    return [...this.hosts.values()].map(cloneHost);
  }

  /** Hosts without copying, for read-only scans on hot paths (allocation, profile counts). */
  values(): IterableIterator<Host> {
    return this.hosts.values();
  }

  size(): number {
    return this.hosts.size;
  }

  load(serial: string, host: Host): void {
    this.hosts.set(serial, host);
  }

  /** Applies the last step and returns what to restore on failure. */
  apply(serial: string, steps: readonly Step[]): Host | undefined {
    const prev = this.hosts.get(serial);
    const last = steps[steps.length - 1];
    if (last) this.hosts.set(serial, canonicalHost(last.host));
    return prev;
  }

  /** Forgets a host and returns what to restore on failure. */
  remove(serial: string): Host | undefined {
    const prev = this.hosts.get(serial);
    this.hosts.delete(serial);
    return prev;
  }

  restore(serial: string, prev: Host | undefined): void {
    if (prev) this.hosts.set(serial, prev);
    else this.hosts.delete(serial);
  }
}

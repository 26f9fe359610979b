import { canonicalHost, cloneHost, type Host } from '../core/host.ts';
import type { Step } from '../core/host-changes.ts';
import { HostIndex, type HostIndexView } from '../core/host-index.ts';

/** A host's files beside conf.json (name → content), e.g. install-failures.json. */
export type SideFiles = Readonly<Record<string, string>>;

/** What a failed write restores: the host and its side files as they were. */
export interface HostSnapshot {
  host: Host | undefined;
  files: SideFiles | undefined;
}

/** The current hosts in memory, with undo for changes whose write failed. */
export class HostTable {
  private readonly hosts = new Map<string, Host>();
  /** Only hosts that have side files are here. */
  private readonly files = new Map<string, SideFiles>();
  /** Kept in step with `hosts` by every change below (free addresses, profile counts, MACs). */
  private readonly index_ = new HostIndex();

  get index(): HostIndexView {
    return this.index_;
  }

  private setHost(serial: string, host: Host | undefined): void {
    this.index_.update(serial, this.hosts.get(serial), host);
    if (host) this.hosts.set(serial, host);
    else this.hosts.delete(serial);
  }

  get(serial: string): Host | undefined {
    const h = this.hosts.get(serial);
    return h && cloneHost(h);
  }

  /** The live record, not a copy: read-only. */
  peek(serial: string): Host | undefined {
    return this.hosts.get(serial);
  }

  has(serial: string): boolean {
    return this.hosts.has(serial);
  }

  serials(): IterableIterator<string> {
    return this.hosts.keys();
  }

  /** Live records by serial, for read-only scans. */
  entries(): IterableIterator<[string, Host]> {
    return this.hosts.entries();
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

  /** The host's side files (empty when it has none). */
  sideFiles(serial: string): SideFiles {
    return this.files.get(serial) ?? {};
  }

  load(serial: string, host: Host, files: SideFiles = {}): void {
    this.setHost(serial, host);
    if (Object.keys(files).length > 0) this.files.set(serial, files);
  }

  /** Applies the steps (the last host, every step's files) and returns what to restore on failure. */
  apply(serial: string, steps: readonly Step[]): HostSnapshot {
    const prev = { host: this.hosts.get(serial), files: this.files.get(serial) };
    const last = steps[steps.length - 1];
    if (last) this.setHost(serial, canonicalHost(last.host));
    const files = sideFilesAfter(prev.files, steps);
    if (files !== prev.files) this.files.set(serial, files!);
    return prev;
  }

  /** Forgets a host and returns what to restore on failure. */
  remove(serial: string): HostSnapshot {
    const prev = { host: this.hosts.get(serial), files: this.files.get(serial) };
    this.setHost(serial, undefined);
    this.files.delete(serial);
    return prev;
  }

  restore(serial: string, prev: HostSnapshot): void {
    this.setHost(serial, prev.host);
    if (prev.files) this.files.set(serial, prev.files);
    else this.files.delete(serial);
  }
}

/** Side files after the steps; the same object when no step writes one. */
export function sideFilesAfter(files: SideFiles | undefined, steps: readonly Pick<Step, 'files'>[]): SideFiles | undefined {
  let out = files;
  for (const s of steps) if (s.files) out = { ...out, ...s.files };
  return out;
}

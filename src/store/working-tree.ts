import * as fs from 'node:fs';
import path from 'node:path';
import { rewriteFileSync } from '../fs/durable-fs.ts';
import { CLUSTER_FILE, HOST_FILE } from './store.ts';

// The working-tree copies of the cluster (<serial>/conf.json, side files, cluster.json) that
// mayu writes for operators, and how it notices an operator's hand edit: after each write the
// file's stat (inode, size, change time) is remembered; a file whose stat differs was written
// by someone else. A stat is ~1.5 µs, so a host's file is checked before each change to it and
// every file once per scan.

/** What a host's conf.json looks like now, against what mayu last wrote there. */
export type FileCheck = { kind: 'same' } | { kind: 'changed'; text: string } | { kind: 'missing' };

export class WorkingTree {
  /** serial → stat signature of its conf.json as mayu last wrote (or last took) it. */
  private readonly signatures = new Map<string, string>();
  /** Host folders known to exist (saves a mkdir per write). */
  private readonly dirs = new Set<string>();

  constructor(readonly dir: string) {}

  hostFile(serial: string): string {
    return path.join(this.dir, serial, HOST_FILE);
  }

  /** Rewrites a host's conf.json (and the side files given) in place; see GitStore.mirror for why in place. */
  writeHost(serial: string, content: string, sides: ReadonlyMap<string, string> = new Map()): void {
    if (!this.dirs.has(serial)) {
      fs.mkdirSync(path.join(this.dir, serial), { recursive: true });
      this.dirs.add(serial);
    }
    try {
      for (const [name, text] of sides) rewriteFileSync(path.join(this.dir, serial, name), text);
      rewriteFileSync(this.hostFile(serial), content);
    } catch (err) {
      // A copy the disk refused (full) may be torn: not an operator's edit. Unknown until mayu
      // writes it again, so it is never judged as one.
      this.signatures.delete(serial);
      throw err;
    }
    this.remember(serial);
  }

  writeCluster(content: string): void {
    rewriteFileSync(path.join(this.dir, CLUSTER_FILE), content);
  }

  /**
   * A file under a reserved folder (admission records); undefined removes it. `ifDifferent`:
   * only when the copy differs (at open, after a kill may have left an older one).
   */
  writeRecord(folder: string, name: string, content: string | undefined, ifDifferent = false): void {
    const file = path.join(this.dir, folder, name);
    if (content === undefined) {
      fs.rmSync(file, { force: true });
      return;
    }
    if (ifDifferent && fs.existsSync(file) && fs.readFileSync(file, 'utf8') === content) return;
    fs.mkdirSync(path.join(this.dir, folder), { recursive: true });
    rewriteFileSync(file, content);
  }

  removeHost(serial: string): void {
    this.dirs.delete(serial);
    this.signatures.delete(serial);
    fs.rmSync(path.join(this.dir, serial), { recursive: true, force: true });
  }

  /** Takes the file as it is now as mayu's (after writing it, or after taking a hand edit). */
  remember(serial: string): void {
    const sig = signature(this.hostFile(serial));
    if (sig) this.signatures.set(serial, sig);
    else this.signatures.delete(serial);
  }

  /** Whether anyone but mayu wrote the host's conf.json since mayu last did. */
  check(serial: string): FileCheck {
    const known = this.signatures.get(serial);
    // Never written by this process yet (its copy is on its way): nothing to compare with.
    if (known === undefined) return { kind: 'same' };
    const file = this.hostFile(serial);
    const now = signature(file);
    if (now === known) return { kind: 'same' };
    if (now === undefined) return { kind: 'missing' };
    try {
      return { kind: 'changed', text: fs.readFileSync(file, 'utf8') };
    } catch {
      return { kind: 'missing' };
    }
  }

  /** Host folders with a conf.json that mayu did not write (an operator added a host by hand). */
  unknownHostFolders(isKnown: (serial: string) => boolean): string[] {
    const found: string[] = [];
    for (const e of fs.readdirSync(this.dir, { withFileTypes: true })) {
      if (!e.isDirectory() || e.name.startsWith('.') || e.name.startsWith('_') || isKnown(e.name)) continue;
      if (fs.existsSync(path.join(this.dir, e.name, HOST_FILE))) found.push(e.name);
    }
    return found;
  }

  readHostFile(serial: string): string | undefined {
    try {
      return fs.readFileSync(this.hostFile(serial), 'utf8');
    } catch {
      return undefined;
    }
  }
}

function signature(file: string): string | undefined {
  const st = fs.statSync(file, { throwIfNoEntry: false, bigint: true });
  return st ? `${st.ino}:${st.size}:${st.ctimeNs}:${st.mtimeNs}` : undefined;
}

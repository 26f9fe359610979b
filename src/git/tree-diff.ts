import type { TreeEntry } from './objects.ts';

/** One top-level name whose entry differs between two trees; `before`/`after` absent when added/removed. */
export interface TreeChange {
  name: string;
  before?: TreeEntry;
  after?: TreeEntry;
}

/** The entries (by name) that differ between two trees: added, removed, or a new object or mode. */
export function diffTrees(before: readonly TreeEntry[], after: readonly TreeEntry[]): TreeChange[] {
  const old = new Map(before.map((e) => [e.name, e]));
  const changes: TreeChange[] = [];
  for (const e of after) {
    const was = old.get(e.name);
    old.delete(e.name);
    if (!was || was.oid !== e.oid || was.mode !== e.mode) changes.push({ name: e.name, before: was, after: e });
  }
  for (const was of old.values()) changes.push({ name: was.name, before: was });
  return changes;
}

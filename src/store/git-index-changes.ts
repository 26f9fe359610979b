import type { TreeChange } from '../git/index-keeper.ts';
import { objectId } from '../git/objects.ts';
import type { SideFiles } from './host-table.ts';

/** What of a store write the index needs (git-store.ts's WriteItem). */
export interface IndexedItem {
  /** Serial, or undefined for the cluster file. */
  serial?: string;
  content: string;
  /** All the host's side files after the write: the host's tree lists them beside its conf file. */
  files?: SideFiles;
  remove?: true;
}

/**
 * The tree changes of a batch's commits, for git's index: the cluster file, or a host's folder
 * replaced by its conf file and side files (nothing else: the host's tree holds nothing else), or
 * the folder gone.
 */
export function indexChanges(items: readonly IndexedItem[], names: { cluster: string; host: string }): TreeChange[] {
  const blob = (text: string) => objectId('blob', Buffer.from(text, 'utf8'));
  return items.map((item): TreeChange => {
    if (item.serial === undefined) return { path: names.cluster, oid: blob(item.content) };
    if (item.remove) return { dir: item.serial, files: new Map() };
    const files = new Map([[names.host, blob(item.content)]]);
    for (const [name, text] of Object.entries(item.files ?? {})) files.set(name, blob(text));
    return { dir: item.serial, files };
  });
}

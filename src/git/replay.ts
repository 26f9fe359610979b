import type { JournalObject } from './journal.ts';
import { parseRecordHeader, type GitObjectReader } from './object-reader.ts';
import { objectId, parseCommit, parseTree, RootTree, type ObjectType } from './objects.ts';
import { PackBuilder } from './pack.ts';
import { diffTrees } from './tree-diff.ts';

// Commits that were built on a head which is no longer the branch's (commits were made beside
// them) are made again on top of the new head: each commit's own top-level changes (the entries
// it changed against its parent) are applied to the new root tree, and the commit is written
// again with the same author, committer and message. Used for a handful of commits at a time,
// so root trees are written whole, not as deltas.

export interface ReplayedObject {
  oid: string;
  type: ObjectType;
  content: Buffer;
}

export interface Replayed {
  /** The last replayed commit (the new head). */
  head: string;
  root: RootTree;
  /** New root trees and commits, in the order made. */
  objects: ReplayedObject[];
  /** Old commit id → new one. */
  renamed: Map<string, string>;
  /** The old commits' root trees: no longer needed by the new ones. */
  oldRoots: Set<string>;
  /** The new commits, oldest first, with their messages and author times. */
  commits: { oid: string; message: string; timestamp: number }[];
}

export async function replayCommits(reader: GitObjectReader, commits: readonly string[], onto: { head: string; root: RootTree }): Promise<Replayed> {
  const root = onto.root.clone();
  const objects: ReplayedObject[] = [];
  const renamed = new Map<string, string>();
  const oldRoots = new Set<string>();
  const made: Replayed['commits'] = [];
  let head = onto.head;
  for (const oid of commits) {
    const raw = (await reader.read(oid)).content;
    const commit = parseCommit(raw);
    oldRoots.add(commit.tree);
    const parentTree = commit.parents[0] ? parseCommit((await reader.read(commit.parents[0])).content).tree : undefined;
    const before = parentTree ? parseTree((await reader.read(parentTree)).content) : [];
    const after = parseTree((await reader.read(commit.tree)).content);
    for (const change of diffTrees(before, after)) {
      if (change.after) root.set(change.after);
      else root.remove(change.name, change.before!.mode);
    }
    // A copy: the root's bytes change in place with the next commit.
    const rootBytes = Buffer.from(root.bytes);
    const tree = objectId('tree', rootBytes);
    objects.push({ oid: tree, type: 'tree', content: rootBytes });
    const content = withTreeAndParent(raw, tree, head);
    head = objectId('commit', content);
    objects.push({ oid: head, type: 'commit', content });
    renamed.set(oid, head);
    made.push({ oid: head, message: commit.message, timestamp: commit.timestamp });
  }
  return { head, root, objects, renamed, oldRoots, commits: made };
}

/** The commit's bytes with its tree and (single) parent replaced; author, committer and message kept. */
function withTreeAndParent(raw: Buffer, tree: string, parent: string): Buffer {
  const text = raw.toString('utf8');
  const lines = text.split('\n');
  const rest = lines.findIndex((l) => !l.startsWith('tree ') && !l.startsWith('parent '));
  return Buffer.from([`tree ${tree}`, `parent ${parent}`, ...lines.slice(rest)].join('\n'), 'utf8');
}

/** Pack records of `kept` (records as they were, deltas after their bases) and `fresh` objects (stored, zlib level 0), each once. */
export function packRecords(kept: readonly JournalObject[], fresh: readonly ReplayedObject[]): { objects: JournalObject[]; bytes: Buffer; index: Buffer; checksum: Buffer } {
  const seen = new Set<string>();
  const keep = kept.filter((o) => !seen.has(o.oid) && seen.add(o.oid));
  const add = fresh.filter((o) => !seen.has(o.oid) && seen.add(o.oid));
  const pack = new PackBuilder(keep.length + add.length);
  const chunks = [pack.header()];
  const objects: JournalObject[] = [];
  for (const o of keep) {
    if (o.baseOid === undefined) {
      chunks.push(pack.addRaw(o.oid, o.record, o.crc));
      objects.push(o);
    } else {
      // Its base comes first (journal order); only the distance to it is new.
      const h = parseRecordHeader(o.record, 0);
      const record = pack.addCopiedDelta(o.oid, o.baseOid, h.size, o.record.subarray(h.dataStart));
      chunks.push(record);
      objects.push({ oid: o.oid, record, crc: pack.lastCrc, baseOid: o.baseOid });
    }
  }
  for (const o of add) {
    const record = pack.add(o.oid, o.type, o.content, undefined, 0);
    chunks.push(record);
    objects.push({ oid: o.oid, record, crc: pack.lastCrc });
  }
  const { checksum, index } = pack.finish();
  return { objects, bytes: Buffer.concat([...chunks, checksum]), index, checksum };
}

/** Of the replaced commits' objects, those the replayed ones still need: blobs and subtrees, not old roots or commits. */
export function stillNeeded(old: readonly JournalObject[], oldCommits: ReadonlySet<string>, replayed: Pick<Replayed, 'oldRoots'>): JournalObject[] {
  return old.filter((o) => o.baseOid === undefined && !oldCommits.has(o.oid) && !replayed.oldRoots.has(o.oid));
}

import { decodeHost, type Host } from '../core/host.ts';
import { normalizeSerial } from '../core/serial.ts';
import { commitsSince, type WalkedCommit } from '../git/first-parent.ts';
import type { GitObjectReader } from '../git/object-reader.ts';
import { parseCommit, parseTree, TREE_MODE, type TreeEntry } from '../git/objects.ts';
import { diffTrees } from '../git/tree-diff.ts';
import { parseClusterJson } from './cluster-json.ts';
import { CLUSTER_FILE, HOST_FILE, HOST_SIDE_FILES, type ClusterConfig } from './store.ts';

// Commits that reached the branch without mayu (an operator's `git commit`, `git revert`, a
// pull): what they change in the cluster, read the way start-up reads a commit. Only the net
// change from mayu's last commit to the new head matters for the hosts; every commit stays in
// history as it is.

/** A walk further back than this is not "a few commits on top": treated as rewritten history. */
const MAX_OUTSIDE_COMMITS = 10_000;

export interface OutsideHostChange {
  serial: string;
  /** The host as the new head has it; undefined when its folder is gone. */
  host: Host | undefined;
  /** conf.json as the new head has it, byte for byte (the working tree gets exactly this). */
  text: string;
  files: Record<string, string>;
}

export interface OutsideCommits {
  head: string;
  commits: WalkedCommit[];
  /** The new head's root tree entries. */
  root: TreeEntry[];
  hosts: OutsideHostChange[];
  /** The new cluster.json, when it changed. */
  cluster?: ClusterConfig;
  /** What makes them unusable (decoding, names, history); empty when they may be checked further. */
  problems: string[];
  /** The branch does not descend from mayu's last commit: nothing can be built on it. */
  rewritten?: true;
}

const short = (oid: string | undefined) => (oid ? oid.slice(0, 12) : 'no commit');

export async function readOutsideCommits(reader: GitObjectReader, base: string | undefined, head: string | undefined): Promise<OutsideCommits> {
  const read = async (oid: string) => parseCommit((await reader.read(oid)).content);
  const empty: OutsideCommits = { head: head ?? '', commits: [], root: [], hosts: [], problems: [] };
  if (!head) return { ...empty, rewritten: true, problems: ['the branch was deleted'] };
  const commits = await commitsSince(read, base, head, MAX_OUTSIDE_COMMITS);
  if (!commits) {
    return { ...empty, rewritten: true, problems: [`${short(head)} does not descend from mayu's last commit ${short(base)}: history was rewritten (reset, rebase, amend?); put the branch back on top of ${short(base)}`] };
  }
  const treeOf = async (commit: string | undefined) => (commit ? parseTree((await reader.read((await read(commit)).tree)).content) : []);
  const root = await treeOf(head);
  const out: OutsideCommits = { head, commits, root, hosts: [], problems: [] };
  for (const change of diffTrees(await treeOf(base), root)) {
    const { name, after } = change;
    if (name === CLUSTER_FILE) {
      if (!after) out.problems.push(`${CLUSTER_FILE} was removed`);
      else {
        try {
          out.cluster = parseClusterJson((await reader.read(after.oid)).content.toString('utf8'));
        } catch (err) {
          out.problems.push(`${CLUSTER_FILE}: ${(err as Error).message}`);
        }
      }
      continue;
    }
    // Other files at the top (a README, notes) are the operator's business: kept, not read.
    // So are folders no serial can be named like (`_config/`, `.notes/`): never hosts.
    if (after?.mode !== TREE_MODE && change.before?.mode !== TREE_MODE) continue;
    if (isReservedName(name)) continue;
    if (!isSerialName(name)) {
      out.problems.push(`${name}/: not a valid serial for a host folder`);
      continue;
    }
    if (!after) {
      out.hosts.push({ serial: name, host: undefined, text: '', files: {} });
      continue;
    }
    if (after.mode !== TREE_MODE) {
      out.problems.push(`${name}: a host's entry must be a folder`);
      continue;
    }
    try {
      const entries = parseTree((await reader.read(after.oid)).content);
      const conf = entries.find((e) => e.name === HOST_FILE);
      if (!conf) throw new Error(`no ${HOST_FILE}`);
      const files: Record<string, string> = {};
      for (const e of entries) if (HOST_SIDE_FILES.includes(e.name)) files[e.name] = (await reader.read(e.oid)).content.toString('utf8');
      const text = (await reader.read(conf.oid)).content.toString('utf8');
      out.hosts.push({ serial: name, host: decodeHost(JSON.parse(text)), text, files });
    } catch (err) {
      out.problems.push(`${name}/${HOST_FILE}: ${(err as Error).message}`);
    }
  }
  return out;
}

export function isSerialName(name: string): boolean {
  try {
    return normalizeSerial(name) === name;
  } catch {
    return false;
  }
}

/** Top-level names starting with "." or "_": never a serial, kept for mayu's and operators' own files. */
export function isReservedName(name: string): boolean {
  return name.startsWith('.') || name.startsWith('_');
}

import type { ParsedCommit } from './objects.ts';

export interface WalkedCommit {
  oid: string;
  commit: ParsedCommit;
}

/**
 * The commits after `base` up to `head` along first parents, oldest first; undefined when
 * `base` is not on that line within `limit` commits (history rewritten, or another branch).
 * `base` undefined: everything from the root.
 */
export async function commitsSince(
  read: (oid: string) => Promise<ParsedCommit>,
  base: string | undefined,
  head: string,
  limit: number,
): Promise<WalkedCommit[] | undefined> {
  const walked: WalkedCommit[] = [];
  let oid: string | undefined = head;
  while (oid !== base) {
    if (oid === undefined || walked.length >= limit) return undefined;
    const commit = await read(oid);
    walked.push({ oid, commit });
    oid = commit.parents[0];
  }
  return walked.reverse();
}

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Etcd3 } from 'etcd3';
import { decodeLog } from '../../src/store/etcd/change-log.ts';
import { fragmented } from '../../src/store/etcd/connect.ts';
import { until } from './etcd.ts';

// What etcd holds and what the audit repo made of it, read with a plain etcd client and the
// native git: for the storms and faults of replicas (tests and bench/etcd-storm.ts).

const run = promisify(execFile);

/** Every revision of the log key since the start: revision → number of changes, in order. */
export async function logRevisions(client: Etcd3, prefix = '/mayu/'): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  const current = await client.get(`${prefix}log`).exec();
  const last = Number(current.kvs[0]?.mod_revision ?? 0);
  if (last === 0) return out;
  const w = await fragmented(client.watch().key(`${prefix}log`).startRevision('1')).create();
  await new Promise<void>((resolve) => {
    w.on('put', (kv) => {
      out.set(Number(kv.mod_revision), decodeLog(kv.value.toString()).length);
      if (Number(kv.mod_revision) >= last) resolve();
    });
  });
  await w.cancel();
  return out;
}

export interface GitPosition { revision: number; index: number; count: number; subject: string }

/** (revision, change i of n, subject) of every commit with an etcd trailer, oldest first. */
export async function gitPositions(dir: string): Promise<GitPosition[]> {
  const { stdout } = await run('git', ['-C', dir, 'log', '--reverse', '--format=%s%x00%(trailers:key=Mayu-Etcd-Revision,valueonly)%x00%(trailers:key=Mayu-Etcd-Change,valueonly)%x01'], { maxBuffer: 1 << 30 });
  return stdout.split('\x01').map((r) => r.trim()).filter(Boolean).flatMap((r) => {
    const [subject, rev, change] = r.split('\x00');
    if (!rev?.trim()) return [];
    const [i, n] = change!.trim().split('/').map(Number);
    return [{ revision: Number(rev.trim()), index: i! - 1, count: n!, subject: subject! }];
  });
}

/** The etcd change of git HEAD's trailer, cheaply (one git process); undefined before the first. */
export async function headPosition(dir: string): Promise<{ revision: number; index: number; count: number } | undefined> {
  const { stdout } = await run('git', ['-C', dir, 'log', '-1', '--format=%(trailers:key=Mayu-Etcd-Revision,valueonly)%x00%(trailers:key=Mayu-Etcd-Change,valueonly)']).catch(() => ({ stdout: '' }));
  const [rev, change] = stdout.split('\x00');
  if (!rev?.trim() || !change?.trim()) return undefined;
  const [i, n] = change.trim().split('/').map(Number);
  return { revision: Number(rev.trim()), index: i! - 1, count: n! };
}

/**
 * Waits until git has as many etcd changes as etcd's log, then compares: one commit per change,
 * in revision order, no gap, no duplicate, each with its revision's change count. Returns the
 * commits with a trailer and the violations ([] when the history is right).
 */
export async function compareHistory(client: Etcd3, dir: string, timeoutMs = 60_000): Promise<{ commits: number; violations: string[] }> {
  const revisions = await logRevisions(client);
  const expected = [...revisions].flatMap(([rev, n]) => Array.from({ length: n }, (_, i) => `${rev}.${i}`));
  let positions: GitPosition[] = [];
  try {
    positions = await until('the history writer to catch up with etcd', timeoutMs, async () => {
      const p = await gitPositions(dir);
      return p.length >= expected.length ? p : undefined;
    });
  } catch {
    positions = await gitPositions(dir);
    return { commits: positions.length, violations: [`git has ${positions.length} etcd changes after ${timeoutMs} ms, etcd's log ${expected.length}`] };
  }
  const violations: string[] = [];
  const got = positions.map((p) => `${p.revision}.${p.index}`);
  const seen = new Set<string>();
  for (const g of got) {
    if (seen.has(g)) violations.push(`change ${g} committed twice`);
    seen.add(g);
  }
  const firstDiff = got.findIndex((g, i) => g !== expected[i]);
  if (firstDiff >= 0 || got.length !== expected.length) {
    const at = firstDiff >= 0 ? firstDiff : Math.min(got.length, expected.length);
    violations.push(`git's changes differ from etcd's log at #${at}: git ${got.slice(at, at + 3).join(',')}, etcd ${expected.slice(at, at + 3).join(',')} (git ${got.length}, etcd ${expected.length})`);
  }
  for (const p of positions) if (p.count !== revisions.get(p.revision)) violations.push(`commit of ${p.revision}.${p.index} says ${p.count} changes, etcd's log has ${revisions.get(p.revision)}`);
  return { commits: positions.length, violations: violations.slice(0, 20) };
}

/** Every host as etcd has it now: serial → parsed conf.json. */
export async function etcdConfs(client: Etcd3, prefix = '/mayu/'): Promise<Map<string, Record<string, unknown>>> {
  const all = await client.getAll().prefix(`${prefix}hosts/`).strings();
  return new Map(Object.entries(all).map(([k, v]) => [k.slice(`${prefix}hosts/`.length), JSON.parse(v) as Record<string, unknown>]));
}

/** The replica id of the current history writer (the election's oldest key), if any. */
export async function historyWriterId(client: Etcd3, prefix = '/mayu/'): Promise<string | undefined> {
  const first = await client.getAll().prefix(`${prefix}history-writer/`).sort('Create', 'Ascend').limit(1).strings();
  return Object.values(first)[0];
}

/** `git rev-list --merges HEAD` is empty. */
export async function isLinear(dir: string): Promise<boolean> {
  const { stdout } = await run('git', ['-C', dir, 'rev-list', '--merges', 'HEAD']);
  return stdout.trim() === '';
}


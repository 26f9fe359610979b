import { execFile } from 'node:child_process';
import { readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

// An operator working in the cluster repo while mayu runs (issue 13), for the crash loop: empty
// commits of their own (made with plumbing and moved in with `git update-ref`, which takes the
// branch's lock and compares, as `git commit` does), hand edits of finished hosts' conf.json (a
// new ProviderId, written as an editor does: a new file renamed over), and git maintenance.

const run = promisify(execFile);

export interface HandEdit {
  serial: string;
  providerId: string;
  /** Date.now() when the file was written. */
  at: number;
}

export interface OperatorActivity {
  /** Operator commits that reached the branch. */
  readonly commits: string[];
  readonly handEdits: HandEdit[];
  readonly maintenanceRuns: string[];
  /** Maintenance commands that failed (with their stderr). */
  readonly maintenanceErrors: string[];
  stop(): Promise<void>;
}

const MAINTENANCE = [['gc', '--quiet'], ['repack', '-a', '-d', '-q'], ['prune', '--expire=now'], ['gc', '--quiet', '--prune=now']];

export function startOperator(clusterDir: string, opts: { everyMs: number; maintenance: boolean; finishedHosts: () => string[] }): OperatorActivity {
  const git = (...args: string[]) => run('git', ['-C', clusterDir, '-c', 'user.name=Op Erator', '-c', 'user.email=op@example.com', ...args], { encoding: 'utf8' });
  const activity = { commits: [] as string[], handEdits: [] as HandEdit[], maintenanceRuns: [] as string[], maintenanceErrors: [] as string[] };
  const edited = new Set<string>();
  let stopped = false;
  let n = 0;

  const commit = async () => {
    const head = (await git('rev-parse', 'HEAD')).stdout.trim();
    const made = (await git('commit-tree', `${head}^{tree}`, '-p', head, '-m', `operator note ${++n}`)).stdout.trim();
    // Fails when mayu moved the branch in between (or holds its lock): an operator retries later.
    const moved = await git('update-ref', '-m', 'operator', 'refs/heads/master', made, head).then(() => true, () => false);
    if (moved) activity.commits.push(made);
  };
  const handEdit = async () => {
    const serial = opts.finishedHosts().find((s) => !edited.has(s));
    if (!serial) return;
    edited.add(serial);
    const file = path.join(clusterDir, serial, 'conf.json');
    const conf = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
    const providerId = `op-${++n}`;
    conf.ProviderId = providerId;
    await writeFile(`${file}.swp`, JSON.stringify(conf, null, 2));
    await rename(`${file}.swp`, file);
    activity.handEdits.push({ serial, providerId, at: Date.now() });
  };
  const maintain = async () => {
    const cmd = MAINTENANCE[activity.maintenanceRuns.length % MAINTENANCE.length]!;
    activity.maintenanceRuns.push(cmd.join(' '));
    await git(...cmd).catch((err: { stderr?: string; message: string }) => activity.maintenanceErrors.push(`git ${cmd.join(' ')}: ${err.stderr || err.message}`));
  };
  const actions = opts.maintenance ? [commit, handEdit, maintain] : [commit, handEdit];

  const loop = (async () => {
    for (let i = 0; !stopped; i++) {
      await new Promise((r) => setTimeout(r, opts.everyMs * (0.5 + Math.random())));
      if (stopped) break;
      await actions[i % actions.length]!().catch(() => undefined);
    }
  })();
  return {
    ...activity,
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

import { execFile } from 'node:child_process';
import path from 'node:path';
import type { Logger } from 'pino';
import { resolveHead } from '../git/refs.ts';

// Pushes the cluster repo to a remote after commits (config audit_push), so the audit trail
// lives somewhere else too (mayu issue #53). Native git does the push: isomorphic-git speaks
// only HTTP(S), not local paths, file:// or ssh. Batched: at most one push in flight, and a
// push sends whatever landed meanwhile; failures are retried with backoff. Provisioning never
// waits for it: commits are durable locally before anything is pushed.

export interface AuditPushOptions {
  /** The cluster directory (its .git is pushed). */
  dir: string;
  /** Remote: a URL git understands or a path to a (bare) repo. */
  url: string;
  /** Branch on the remote. */
  branch: string;
  /** At least this long between the starts of two pushes (the batching window). */
  intervalMs: number;
  /** Upper bound of the retry delay, which doubles from intervalMs per failure. */
  maxBackoffMs: number;
  /** A push still running after this is killed and counts as failed. */
  timeoutMs: number;
  logger: Logger;
  now?: () => Date;
  /** Runs git with these arguments; rejects with its stderr. Tests pass a fake. */
  runGit?: (args: string[], timeoutMs: number) => Promise<void>;
}

export interface AuditPushStatus {
  url: string;
  branch: string;
  /** idle: everything pushed; pending: a push is scheduled; pushing: one runs; failing: the last one failed, a retry is scheduled. */
  state: 'idle' | 'pending' | 'pushing' | 'failing';
  lastPushedCommit?: string;
  lastSuccessAt?: string;
  lastError?: string;
  lastErrorAt?: string;
  consecutiveFailures: number;
  nextAttemptAt?: string;
}

function runNativeGit(args: string[], timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    // Never wait for a password prompt: a push without working credentials fails and is retried.
    const env = { ...process.env, GIT_TERMINAL_PROMPT: '0', GIT_SSH_COMMAND: process.env['GIT_SSH_COMMAND'] ?? 'ssh -o BatchMode=yes' };
    execFile('git', args, { timeout: timeoutMs, killSignal: 'SIGKILL', env, maxBuffer: 1024 * 1024 }, (err, _stdout, stderr) => {
      if (!err) return resolve();
      const killed = (err as { killed?: boolean }).killed ? `killed after ${timeoutMs} ms; ` : '';
      reject(new Error(`${killed}${String(stderr).trim() || err.message}`.slice(0, 2000)));
    });
  });
}

export class AuditPusher {
  private dirty = false;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  private closed = false;
  private lastStart = 0;
  private readonly st: AuditPushStatus;

  constructor(private readonly opts: AuditPushOptions) {
    this.st = { url: opts.url, branch: opts.branch, state: 'idle', consecutiveFailures: 0 };
  }

  /** Something was committed: push it soon. Cheap, never throws. */
  notify(): void {
    this.dirty = true;
    this.schedule();
  }

  status(): AuditPushStatus {
    return { ...this.st };
  }

  /** Stops scheduling and waits for a push in flight (bounded by timeoutMs). */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.inFlight;
  }

  private now(): number {
    return (this.opts.now ?? (() => new Date()))().getTime();
  }

  private schedule(): void {
    if (this.closed || this.inFlight || this.timer || !this.dirty) return;
    const failures = this.st.consecutiveFailures;
    const base = Math.max(this.opts.intervalMs, 100);
    const delay = failures > 0
      ? Math.min(base * 2 ** (failures - 1), this.opts.maxBackoffMs)
      : Math.max(0, this.lastStart + this.opts.intervalMs - this.now());
    if (failures === 0) this.st.state = 'pending';
    this.st.nextAttemptAt = new Date(this.now() + delay).toISOString();
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.inFlight = this.push().finally(() => {
        this.inFlight = undefined;
        this.schedule();
      });
    }, delay);
    this.timer.unref();
  }

  private async push(): Promise<void> {
    this.dirty = false;
    this.lastStart = this.now();
    this.st.state = 'pushing';
    this.st.nextAttemptAt = undefined;
    const gitdir = path.join(this.opts.dir, '.git');
    try {
      const head = await resolveHead(gitdir);
      if (head && head !== this.st.lastPushedCommit) {
        // The commit itself, not the branch: the status then names exactly what the remote has.
        const args = ['--git-dir', gitdir, 'push', '--quiet', this.opts.url, `${head}:refs/heads/${this.opts.branch}`];
        await (this.opts.runGit ?? runNativeGit)(args, this.opts.timeoutMs);
        this.st.lastPushedCommit = head;
        this.st.lastSuccessAt = new Date(this.now()).toISOString();
      }
      if (this.st.consecutiveFailures > 0) this.opts.logger.info({ url: this.opts.url, commit: head, after: this.st.consecutiveFailures }, 'audit push recovered');
      else this.opts.logger.debug({ url: this.opts.url, commit: head }, 'audit push done');
      this.st.consecutiveFailures = 0;
      this.st.state = this.dirty ? 'pending' : 'idle';
    } catch (err) {
      this.dirty = true;
      this.st.consecutiveFailures++;
      this.st.lastError = (err as Error).message;
      this.st.lastErrorAt = new Date(this.now()).toISOString();
      this.st.state = 'failing';
      this.opts.logger.warn({ url: this.opts.url, err: this.st.lastError, failures: this.st.consecutiveFailures }, 'audit push failed, will retry');
    }
  }
}

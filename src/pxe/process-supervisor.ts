import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Logger } from 'pino';

// Runs one long-lived child (dnsmasq), logs its output, restarts it with backoff when it dies and
// stops it politely. A start counts as done only once the child prints its ready line, so a child
// that dies at start (bad interface, unreadable file) fails start() with its own words.

export interface BackoffPolicy {
  /** Delay before the first restart after a stable run. */
  initialMs: number;
  maxMs: number;
  /** A child that stayed up this long resets the delay to initialMs. */
  stableMs: number;
}

export const DEFAULT_BACKOFF: Readonly<BackoffPolicy> = Object.freeze({ initialMs: 250, maxMs: 30_000, stableMs: 30_000 });

/** initialMs doubled per failure in a row, capped at maxMs. */
export function restartDelay(failuresInARow: number, policy: BackoffPolicy): number {
  return Math.min(policy.maxMs, policy.initialMs * 2 ** Math.min(failuresInARow, 30));
}

export interface SupervisorOptions {
  /** Name in messages, e.g. "dnsmasq". */
  name: string;
  binary: string;
  args: string[];
  /** Receives every output line of the child and the supervisor's own messages. */
  logger: Logger;
  /** The line the child prints once it serves. */
  isReady: (line: string) => boolean;
  /** A line meaning this start failed even though the child keeps running. */
  isStartError?: (line: string) => boolean;
  startTimeoutMs?: number;
  stopTimeoutMs?: number;
  backoff?: BackoffPolicy;
}

export class StartError extends Error {}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Output lines kept for the error message of a failed start. */
const KEPT_LINES = 20;

export class ProcessSupervisor {
  private child: ChildProcess | undefined;
  private exited: Promise<Exit> = Promise.resolve({ code: null, signal: null });
  private ready = false;
  private readyAt = 0;
  private reloadPending = false;
  private stopping = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private failuresInARow = 0;
  private restartCount = 0;
  private reloadCount = 0;

  constructor(private readonly opts: SupervisorOptions) {}

  /** Times the child was restarted after it died (for metrics). */
  get restarts(): number {
    return this.restartCount;
  }

  /** SIGHUPs sent. */
  get reloads(): number {
    return this.reloadCount;
  }

  /** The child runs and has printed its ready line (readiness probe). */
  get serving(): boolean {
    return this.child !== undefined && this.ready;
  }

  /** PID of the running child; undefined between a death and its restart. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts the child; rejects with its output if it dies or reports an error before it is ready. */
  async start(): Promise<void> {
    this.stopping = false;
    await this.launch();
    this.opts.logger.info({ pid: this.pid }, `${this.opts.name} started`);
  }

  /** SIGHUP once the child is ready (earlier, the signal would kill it before it installs its handler). */
  reload(): void {
    if (!this.child) return; // between restarts: the next child reads the current files anyway
    if (!this.ready) {
      this.reloadPending = true;
      return;
    }
    this.child.kill('SIGHUP');
    this.reloadCount++;
    this.opts.logger.debug({ pid: this.pid }, `${this.opts.name} sent SIGHUP`);
  }

  /** SIGTERM, SIGKILL after stopTimeoutMs, resolves once the child is gone; no restart afterwards. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    const child = this.child;
    if (!child) return;
    child.kill('SIGTERM');
    const timeoutMs = this.opts.stopTimeoutMs ?? 5000;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      this.exited.then(() => false),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(true), timeoutMs))),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      this.opts.logger.warn({ pid: child.pid, timeoutMs }, `${this.opts.name} ignored SIGTERM: SIGKILL`);
      child.kill('SIGKILL');
      await this.exited;
    }
  }

  private launch(): Promise<void> {
    const { name, binary, args, logger } = this.opts;
    this.ready = false;
    this.reloadPending = false;
    // Own process group: a Ctrl-C in mayu's terminal reaches mayu only, which then stops the child in order.
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    this.child = child;
    const kept: string[] = [];
    let spawnError: NodeJS.ErrnoException | undefined;
    this.exited = new Promise<Exit>((resolve) => {
      child.once('close', (code, signal) => resolve({ code, signal }));
      // A binary that cannot be spawned emits only 'error'; later errors (a failed kill) are logged.
      child.on('error', (err: NodeJS.ErrnoException) => {
        if (child.pid !== undefined) return logger.warn({ err, pid: child.pid }, `${name}: ${err.message}`);
        spawnError = err;
        resolve({ code: null, signal: null });
      });
    });

    return new Promise<void>((resolve, reject) => {
      let settled = false; // this start succeeded or failed
      let served = false; // this child became ready: its death is a restart
      const fail = async (reason: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) child.kill('SIGKILL');
        await this.exited;
        if (this.child === child) this.child = undefined;
        const output = kept.length ? `:\n${kept.join('\n')}` : '';
        reject(new StartError(`${name} (${binary}) ${reason}${output}`));
      };
      const timeoutMs = this.opts.startTimeoutMs ?? 10_000;
      const timer = setTimeout(() => void fail(`was not ready after ${timeoutMs} ms`), timeoutMs);

      const onLine = (line: string) => {
        if (!line.trim()) return; // dnsmasq starts its fatal errors with an empty line
        logger.info({ pid: child.pid }, line);
        if (settled) return;
        kept.push(line);
        if (kept.length > KEPT_LINES) kept.shift();
        if (this.opts.isStartError?.(line)) {
          void fail('reported an error at start');
        } else if (this.opts.isReady(line)) {
          settled = true;
          served = true;
          clearTimeout(timer);
          this.ready = true;
          this.readyAt = Date.now();
          if (this.reloadPending) this.reload();
          resolve();
        }
      };
      createInterface({ input: child.stdout! }).on('line', onLine);
      createInterface({ input: child.stderr! }).on('line', onLine);

      void this.exited.then((exit) => {
        if (spawnError) void fail(spawnError.code === 'ENOENT' ? 'not found: install it or give its path' : `cannot be started: ${spawnError.message}`);
        else if (!settled) void fail(`exited at start (${describeExit(exit)})`);
        else if (served && this.child === child) this.onExit(exit);
      });
    });
  }

  private onExit(exit: Exit): void {
    this.child = undefined;
    this.ready = false;
    if (this.stopping) return;
    if (Date.now() - this.readyAt >= (this.opts.backoff ?? DEFAULT_BACKOFF).stableMs) this.failuresInARow = 0;
    this.scheduleRestart(describeExit(exit), exit);
  }

  private scheduleRestart(reason: string, exit?: Exit): void {
    const delayMs = restartDelay(this.failuresInARow, this.opts.backoff ?? DEFAULT_BACKOFF);
    this.failuresInARow++;
    this.restartCount++;
    this.opts.logger.warn(
      { code: exit?.code, signal: exit?.signal, restarts: this.restartCount, delayMs },
      `${this.opts.name} ${reason}: restarting in ${delayMs} ms`,
    );
    this.restartTimer = setTimeout(() => void this.relaunch(), delayMs);
  }

  private async relaunch(): Promise<void> {
    if (this.stopping) return;
    try {
      await this.launch();
    } catch (err) {
      if (!this.stopping) {
        this.opts.logger.error({ err, restarts: this.restartCount }, `${this.opts.name} restart failed`);
        this.scheduleRestart('restart failed');
      }
      return;
    }
    this.opts.logger.info({ pid: this.pid, restarts: this.restartCount }, `${this.opts.name} restarted`);
  }
}

function describeExit(exit: Exit): string {
  if (exit.signal) return `killed by ${exit.signal}`;
  return exit.code === null ? 'could not run' : `exit code ${exit.code}`;
}

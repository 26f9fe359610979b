import { spawn } from 'node:child_process';
import type { Logger } from 'pino';
import type { Host } from '../core/host.ts';
import type { ShellCommand } from '../render/shell-command.ts';

// The site's power hook (config power_hook): when a reinstall is requested, mayu runs the
// operator's command (say, ipmitool: boot from PXE next, power cycle) with the host's values.
// It runs after the state change is committed and never holds up the answer; its outcome is
// logged and kept in memory as the host's last result (GET /admin/host/<serial>/power-hook).

/** Keys a power hook command may use, from the host. */
export const POWER_HOOK_KEYS = ['serial', 'ipmi_address', 'internal_addr', 'hostname', 'machine_id'] as const;

/** Bytes of stdout / stderr kept per run. */
const OUTPUT_LIMIT = 16 * 1024;

export interface PowerHookResult {
  serial: string;
  /** The command as run by /bin/sh -c. */
  command: string;
  startedAt: string;
  finishedAt?: string;
  running: boolean;
  /** null while running, when killed by a signal, or when it never started. */
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  /** Set when the hook did not run or could not start. */
  error?: string;
  stdout: string;
  stderr: string;
}

export interface PowerHookOptions {
  command: ShellCommand;
  timeoutMs: number;
  logger: Logger;
  now?: () => Date;
  shell?: string;
}

export class PowerHook {
  private readonly results = new Map<string, PowerHookResult>();
  private readonly running = new Set<Promise<void>>();

  constructor(private readonly opts: PowerHookOptions) {}

  /** The last run for that host (or the one running now). */
  lastResult(serial: string): PowerHookResult | undefined {
    const r = this.results.get(serial);
    return r && { ...r };
  }

  /** Starts the hook for this host; resolves with its result once it ended. Never rejects. */
  run(host: Readonly<Host>): Promise<PowerHookResult> {
    const serial = host.Serial ?? '';
    const now = () => (this.opts.now ?? (() => new Date()))().toISOString();
    const view: Record<string, string> = {
      serial,
      ipmi_address: host.IPMIAddr ?? '',
      internal_addr: host.InternalAddr ?? '',
      hostname: host.Hostname ?? '',
      machine_id: host.MachineID ?? '',
    };
    const result: PowerHookResult = { serial, command: '', startedAt: now(), running: true, exitCode: null, signal: null, timedOut: false, stdout: '', stderr: '' };
    this.results.set(serial, result);
    const finish = (error?: string): PowerHookResult => {
      result.running = false;
      result.finishedAt = now();
      if (error) result.error = error;
      const ok = !error && result.exitCode === 0;
      const fields = { serial, command: result.command, exitCode: result.exitCode, signal: result.signal, timedOut: result.timedOut, error: result.error, stdout: result.stdout, stderr: result.stderr };
      if (ok) this.opts.logger.info(fields, 'power hook finished');
      else this.opts.logger.warn(fields, 'power hook failed');
      return { ...result };
    };
    const missing = [...this.opts.command.keys].filter((k) => view[k] === '');
    if (missing.length > 0) return Promise.resolve(finish(`not run: the host has no ${missing.join(', ')} (mayuctl set ${serial} ipmiaddr <ip>)`));
    result.command = this.opts.command.render(view);
    this.opts.logger.info({ serial, command: result.command }, 'power hook started');

    const done = new Promise<PowerHookResult>((resolve) => {
      // Its own process group, so a timeout kills what the shell started too.
      const child = spawn(this.opts.shell ?? '/bin/sh', ['-c', result.command], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
      const collect = (key: 'stdout' | 'stderr') => (chunk: Buffer) => {
        if (result[key].length < OUTPUT_LIMIT) result[key] = (result[key] + chunk.toString('utf8')).slice(0, OUTPUT_LIMIT);
      };
      child.stdout.on('data', collect('stdout'));
      child.stderr.on('data', collect('stderr'));
      const timer = setTimeout(() => {
        result.timedOut = true;
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          child.kill('SIGKILL');
        }
      }, this.opts.timeoutMs);
      child.once('error', (err) => {
        clearTimeout(timer);
        resolve(finish(`cannot start ${this.opts.shell ?? '/bin/sh'}: ${err.message}`));
      });
      child.once('close', (code, signal) => {
        clearTimeout(timer);
        result.exitCode = code;
        result.signal = signal;
        resolve(finish(result.timedOut ? `killed after ${this.opts.timeoutMs} ms (power_hook.timeout_ms)` : undefined));
      });
    });
    const tracked = done.then(() => undefined);
    this.running.add(tracked);
    void tracked.finally(() => this.running.delete(tracked));
    return done;
  }

  /** Waits for the hooks still running (each ends by its timeout at the latest). */
  async close(): Promise<void> {
    await Promise.all([...this.running]);
  }
}

import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { DnsmasqFiles } from './dnsmasq-files.ts';

// A mayu killed with SIGKILL leaves its dnsmasq running, and a second dnsmasq on the same
// interface starts without complaint: both would answer DHCP. So before starting, stop the one
// named by our pid file if it is still running with our conf file.

const POLL_MS = 50;

async function readPid(file: string): Promise<number | undefined> {
  const text = await readFile(file, 'utf8').catch(() => '');
  const pid = Number.parseInt(text.trim(), 10);
  return Number.isInteger(pid) && pid > 1 ? pid : undefined;
}

async function runsWithConf(pid: number, conf: string): Promise<boolean> {
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  return cmdline.split('\0').includes(`--conf-file=${conf}`);
}

/** Sends a signal; false when the process is gone (signal 0 only tests that it exists). */
export function signal(pid: number, sig: NodeJS.Signals | 0): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

async function gone(pid: number, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (signal(pid, 0)) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  return true;
}

/** Returns the PID it stopped, if any. */
export async function stopStaleDnsmasq(files: DnsmasqFiles, logger: Logger, timeoutMs = 5000): Promise<number | undefined> {
  const pid = await readPid(files.pid);
  if (pid === undefined || !(await runsWithConf(pid, files.conf))) return undefined;
  logger.warn({ pid, pidFile: files.pid }, 'dnsmasq of an earlier mayu still runs: stopping it');
  signal(pid, 'SIGTERM');
  if (!(await gone(pid, timeoutMs))) {
    signal(pid, 'SIGKILL');
    await gone(pid, timeoutMs);
  }
  return pid;
}

import { chmod, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { NetnsClient, NetnsLab } from './netns.ts';

// busybox udhcpc as a DHCP client in a lab client namespace: one DISCOVER/REQUEST round, then exit.

export interface DhcpResult {
  /** udhcpc's exit code: 0 lease obtained, 1 none. */
  code: number | null;
  /** Environment udhcpc gave its script for the `bound` event: ip, boot_file, siaddr, serverid, lease, ... */
  lease: Record<string, string> | undefined;
  ms: number;
  output: string;
}

export interface DhcpAsk {
  /** Option 60, e.g. "PXEClient" (what a PXE ROM sends). */
  vendorClass?: string;
  /** Extra options as udhcpc -x takes them, e.g. "0x5d:0007" (client-arch 7, UEFI) or "0xaf:..." (175, iPXE). */
  options?: string[];
  /** DISCOVERs sent before giving up (-t) and seconds between them (-T). */
  tries?: number;
  pauseSeconds?: number;
}

const SCRIPT = '#!/bin/sh\necho "udhcpc-event $1"\n[ "$1" = bound ] && env | grep -E "^(ip|boot_file|siaddr|serverid|lease|subnet|router|dns)=" | sed "s/^/udhcpc-env /"\nexit 0\n';

/** Writes the udhcpc event script once per lab use; pass its path to dhcpRequest. */
export async function writeUdhcpcScript(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'mayu-udhcpc-'));
  const file = path.join(dir, 'event.sh');
  await writeFile(file, SCRIPT);
  await chmod(file, 0o755);
  return file;
}

export async function dhcpRequest(lab: NetnsLab, client: NetnsClient, script: string, ask: DhcpAsk = {}): Promise<DhcpResult> {
  const args = ['udhcpc', '-f', '-q', '-n', '-i', client.ifname, '-s', script, '-t', String(ask.tries ?? 3), '-T', String(ask.pauseSeconds ?? 1), '-A', '1'];
  if (ask.vendorClass) args.push('-V', ask.vendorClass);
  for (const o of ask.options ?? []) args.push('-x', o);
  const r = await lab.exec('busybox', args, { ns: client.ns });
  const output = r.stdout + r.stderr;
  const env = [...output.matchAll(/^udhcpc-env ([a-z_]+)=(.*)$/gm)].map((m) => [m[1]!, m[2]!] as const);
  return { code: r.code, lease: /^udhcpc-event bound$/m.test(output) ? Object.fromEntries(env) : undefined, ms: r.ms, output };
}

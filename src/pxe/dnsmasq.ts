import { access, mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { MayuConfig } from '../config/schema.ts';
import type { Host } from '../core/host.ts';
import type { Renderer } from '../render/renderer.ts';
import { writeFileAtomic } from '../fs/durable-fs.ts';
import { renderDnsmasqConf } from './dnsmasq-conf.ts';
import { dnsmasqArgs, dnsmasqFiles, isHostsfileRead, isHostsfileUnreadable, type DnsmasqFiles } from './dnsmasq-files.ts';
import { HostsfileWriter } from './hostsfile-writer.ts';
import { ProcessSupervisor, type BackoffPolicy } from './process-supervisor.ts';
import { stopStaleDnsmasq } from './stale-dnsmasq.ts';

// mayu's DHCP/TFTP side (network.pxe): renders dnsmasq's conf once, runs dnsmasq under a
// supervisor, and keeps the hostsfile in step with the hosts (rewrite + SIGHUP, never a restart).

/** What dnsmasq hands to PXE ROMs over TFTP (copied by `npm run build:tftproot`). */
export const BOOT_FILES = ['undionly.kpxe', 'snponly.efi'] as const;

export interface DnsmasqOptions {
  /** Name on PATH or path of the dnsmasq binary. */
  binary: string;
  /** Folder for the generated conf, hostsfile, lease file and pid file. */
  runDir: string;
  backoff?: BackoffPolicy;
}

export interface DnsmasqDeps extends DnsmasqOptions {
  tftpRoot: string;
  renderer: Renderer;
  config: MayuConfig;
  httpPort: number;
  version: string;
  hosts: { scan(): Iterable<Readonly<Host>> };
  logger: Logger;
}

export interface RunningDnsmasq {
  readonly files: DnsmasqFiles;
  readonly supervisor: ProcessSupervisor;
  /** A host changed (state, MACs): rewrite the hostsfile soon, coalesced, then SIGHUP dnsmasq. */
  hostsChanged(): void;
  /** Stops dnsmasq and waits until it is gone. */
  close(): Promise<void>;
}

export async function missingBootFiles(tftpRoot: string): Promise<string[]> {
  const present = await Promise.all(BOOT_FILES.map((f) => access(path.join(tftpRoot, f)).then(() => true, () => false)));
  return BOOT_FILES.filter((_, i) => !present[i]);
}

export async function startDnsmasq(deps: DnsmasqDeps): Promise<RunningDnsmasq> {
  const logger = deps.logger.child({ component: 'dnsmasq' });
  const files = dnsmasqFiles(deps.runDir);
  const tftpRoot = path.resolve(deps.tftpRoot);
  // dnsmasq drops to user nobody: it must be able to read these folders (0755).
  await mkdir(path.dirname(files.conf), { recursive: true, mode: 0o755 });
  await mkdir(tftpRoot, { recursive: true, mode: 0o755 });
  const missing = await missingBootFiles(tftpRoot);
  if (missing.length) logger.warn({ tftpRoot, missing }, `tftproot lacks ${missing.join(', ')}: PXE ROMs cannot chainload iPXE (run npm run build:tftproot)`);

  await stopStaleDnsmasq(files, logger);
  await writeFileAtomic(files.conf, renderDnsmasqConf({ ...deps, tftpRoot }), false);
  const supervisor = new ProcessSupervisor({
    name: 'dnsmasq',
    binary: deps.binary,
    args: dnsmasqArgs(files),
    logger,
    isReady: (line) => isHostsfileRead(line, files),
    isStartError: (line) => isHostsfileUnreadable(line, files),
    backoff: deps.backoff,
  });
  const writer = new HostsfileWriter({ file: files.hostsfile, hosts: deps.hosts, logger, onWritten: () => supervisor.reload() });
  await writer.write();
  try {
    await supervisor.start();
  } catch (err) {
    const hint = isPermissionProblem(err) ? `\n(dnsmasq runs as user nobody: ${path.dirname(files.conf)} and ${tftpRoot} and their parent folders must be readable by it)` : '';
    throw new Error(`${(err as Error).message}${hint}`, { cause: err });
  }
  return {
    files,
    supervisor,
    hostsChanged: () => writer.schedule(),
    async close() {
      await writer.close();
      await supervisor.stop();
    },
  };
}

function isPermissionProblem(err: unknown): boolean {
  return /Permission denied|cannot read/.test((err as Error).message);
}

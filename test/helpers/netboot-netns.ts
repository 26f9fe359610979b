// VMs netbooting through the real mayu and its real dnsmasq, all inside a private network
// namespace (root only): bridge br0 (10.77.0.1/24) with one tap per VM, mayu bound to br0's
// address with dnsmasq on br0, QEMU (TCG) on the taps. Nothing links the namespace to the host,
// so no packet leaves it; the test process reaches mayu only through `ip netns exec` (mayuctl).
// Shared by test/netboot-e2e-netns.test.ts and `npm run bench:netboot -- --netns`.
import { execFile } from 'node:child_process';
import { chmod, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { FIXTURES, ROOT, startMayu, tempDir, type MayuProcess } from './mayu-process.ts';
import { IMAGES_DIR } from './netboot-images.ts';
import { createNetnsLab, type NetnsLab } from './netns.ts';
import { createBlankDisk, startVm, tapNetdev, type Vm, type VmExit, type VmOptions } from './qemu.ts';

const run = promisify(execFile);

/** network.* of this config matches createNetnsLab's defaults (br0 = 10.77.0.1/24). */
export const NETNS_CONFIG = path.join(FIXTURES, 'netboot-netns-config.yaml');
export const BOOTSTRAP_RANGE = { start: 10, end: 30 }; // last octets, as in the config

export interface Machine {
  /** 1-based; the VM sits on tap<index>. */
  index: number;
  /** SMBIOS serial as QEMU sets it. */
  smbiosSerial: string;
  /** The host's serial in mayu (lower case). */
  serial: string;
  mac: string;
  uuid: string;
  tap: string;
  disk: string;
}

/** One QEMU run of a machine, from start to exit (exit code checked). */
export interface VmRun {
  vm: Vm;
  exit: VmExit;
  /** Epoch ms of QEMU's start. */
  startedAt: number;
}

export interface DhcpLease {
  expires: number;
  mac: string;
  ip: string;
  hostname: string;
}

export interface NetbootNetns {
  lab: NetnsLab;
  mayu: MayuProcess;
  workDir: string;
  machines: Machine[];
  /** Every VM started so far (killed by cleanup). */
  vms: Vm[];
  /** One QEMU run of `m` (network first, then disk; -no-reboot); rejects unless QEMU exits 0. `vm`: extra VmOptions (firmware, ...). */
  runVm(m: Machine, label: string, timeoutMs: number, vm?: Partial<VmOptions>): Promise<VmRun>;
  /** Starts `m` as runVm does, without waiting for its exit (an OS that keeps running); killed by cleanup. */
  startMachine(m: Machine, label: string, vm?: Partial<VmOptions>): Vm;
  /** bin/mayuctl against mayu, run inside the namespace. */
  mayuctl(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }>;
  /** dnsmasq's lease file in mayu's run dir. */
  leases(): Promise<DhcpLease[]>;
  /** Kills the VMs (by PID), stops mayu (and its dnsmasq), empties and deletes the namespace, removes the work dir. Idempotent. */
  cleanup(): Promise<void>;
}

export function machineFor(index: number, workDir: string, prefix = 'MAYU-E2E'): Machine {
  const n = index.toString(16).padStart(2, '0');
  const smbiosSerial = `${prefix}-${String(index).padStart(4, '0')}`;
  return {
    index,
    smbiosSerial,
    serial: smbiosSerial.toLowerCase(),
    mac: `52:54:00:4e:00:${n}`,
    uuid: `6d617975-0000-4000-8000-0000000001${n}`,
    tap: `tap${index}`,
    disk: path.join(workDir, `disk-${index}.raw`),
  };
}

export function parseLeases(text: string): DhcpLease[] {
  return text.split('\n').filter(Boolean).map((line) => {
    const [expires, mac, ip, hostname] = line.split(' ');
    return { expires: Number(expires), mac: mac ?? '', ip: ip ?? '', hostname: hostname ?? '' };
  });
}

export function inBootstrapRange(lab: NetnsLab, ip: string): boolean {
  const last = ip.startsWith(`${lab.subnet}.`) ? Number(ip.slice(lab.subnet.length + 1)) : NaN;
  return last >= BOOTSTRAP_RANGE.start && last <= BOOTSTRAP_RANGE.end;
}

/**
 * The namespace, mayu with dnsmasq on br0, and `count` machines with blank 64 MiB disks. The
 * images must exist (ensureNetbootImages). On any failure here, everything made so far is removed.
 */
export async function startNetbootNetns(opts: { machines: number; serialPrefix?: string; config?: string; diskMb?: number }): Promise<NetbootNetns> {
  const lab = await createNetnsLab({ taps: opts.machines });
  const vms: Vm[] = [];
  let mayu: MayuProcess | undefined;
  let workDir: string | undefined;
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    const errors: string[] = [];
    for (const vm of vms) await vm.kill().catch((e: Error) => errors.push(`${vm.name}: ${e.message}`));
    // SIGTERM: mayu stops its dnsmasq and waits for it. lab.cleanup kills anything left in the namespace.
    if (mayu) {
      const m = mayu;
      let timer: NodeJS.Timeout | undefined;
      const stopped = await Promise.race([m.stop().then(() => true), new Promise<false>((r) => (timer = setTimeout(() => r(false), 20_000)))]);
      clearTimeout(timer);
      if (!stopped) {
        errors.push('mayu: still running 20 s after SIGTERM, killed');
        await m.kill9();
      }
    }
    await lab.cleanup().catch((e: Error) => errors.push(e.message));
    if (workDir) await rm(workDir, { recursive: true, force: true });
    if (errors.length) throw new Error(`cleanup: ${errors.join('; ')}`);
  };
  try {
    workDir = await tempDir('mayu-e2e-');
    await chmod(workDir, 0o755); // dnsmasq runs as nobody: it reads tftproot/ and run/ below
    await run('bash', [path.join(ROOT, 'scripts/build-tftproot.sh'), path.join(workDir, 'tftproot')]);
    const machines = Array.from({ length: opts.machines }, (_, i) => machineFor(i + 1, workDir!, opts.serialPrefix));
    for (const m of machines) await createBlankDisk(m.disk, opts.diskMb ?? 64);
    mayu = await startMayu({
      workDir,
      config: opts.config ?? NETNS_CONFIG,
      imagesDir: IMAGES_DIR,
      dnsmasq: 'dnsmasq',
      wrap: lab.wrap(),
      bindAddress: lab.bridgeAddr,
    });
    await mayu.waitForLog((e) => e.component === 'dnsmasq' && e.msg === 'dnsmasq started', 30_000);
    const m0 = mayu;
    const wd = workDir;
  const startMachine = (m: Machine, label: string, extra: Partial<VmOptions> = {}): Vm => {
      const vm = startVm({
        name: `${m.smbiosSerial} ${label}`,
        consoleLog: path.join(wd, `console-${m.index}-${label}.log`),
        netdev: tapNetdev({ ifname: m.tap }),
        mac: m.mac,
        serial: m.smbiosSerial,
        uuid: m.uuid,
        disk: m.disk,
        bootOrder: 'nc',
        wrap: lab.wrap(),
        ...extra,
      });
      vms.push(vm);
      return vm;
    };
    return {
      lab,
      mayu: m0,
      workDir: wd,
      machines,
      vms,
      startMachine,
      async runVm(m, label, timeoutMs, extra = {}) {
        const startedAt = Date.now();
        const vm = startMachine(m, label, extra);
        const exit = await vm.waitForExit(timeoutMs);
        if (exit.code !== 0) {
          throw new Error(`${vm.name}: QEMU exit ${exit.code}/${exit.signal} after ${exit.seconds.toFixed(1)} s; console tail:\n${vm.console().split('\n').slice(-40).join('\n')}`);
        }
        return { vm, exit, startedAt };
      },
      async mayuctl(args) {
        const r = await lab.exec(path.join(ROOT, 'bin/mayuctl'), ['--host', lab.bridgeAddr, '--port', String(m0.port), ...args], { timeoutMs: 120_000 });
        return { code: r.code, stdout: r.stdout, stderr: r.stderr };
      },
      async leases() {
        return parseLeases(await readFile(path.join(m0.runDir, 'dnsmasq.leases'), 'utf8').catch(() => ''));
      },
      cleanup,
    };
  } catch (err) {
    await cleanup().catch(() => undefined);
    throw err;
  }
}

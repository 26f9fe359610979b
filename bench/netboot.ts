// Power-on → `running` of VMs netbooting through mayu (TCG), and the sizes of the images they boot.
//   npm run bench:netboot -- [--runs 1] [--max-wait 120]            one VM, QEMU user networking
//   npm run bench:netboot -- --netns [--scenarios bios:1,uefi:1,uefi-http:1,bios:4] [--runs 1]
//                                                                   mayu's own dnsmasq in a network
//                                                                   namespace, one scenario after another
//
// --netns (root): as test/netboot-e2e-netns.test.ts, a fresh namespace, mayu and cluster per run;
// the VMs sit on taps of bridge br0 and get DHCP from mayu's dnsmasq; all VMs of a run power on
// at once. Per VM: install run, then disk run, as below; milestones from mayu's log (requests
// attributed to a VM by its serial, or by its leased address for the URLs that carry none) and
// from the console. A scenario is FIRMWARE:VMS, FIRMWARE one of
//   bios       SeaBIOS, QEMU's iPXE option ROM (the lab's default machine)
//   uefi       OVMF's own PXE: DHCP, snponly.efi over TFTP, iPXE (uefiPxeBootVm: IPv6 off)
//   uefi-http  OVMF's own HTTP boot: snponly.efi from mayu's /uefi/snponly.efi (uefiHttpBootVm)
// `--vms 1,4` (older form) is bios:1,bios:4.
//
// Default mode:
// Per run: a fresh cluster and blank disk; QEMU run 1 (netboot → installer → image + config on
// disk → reboot, -no-reboot ends it), QEMU run 2 (netboot → iPXE exit → disk → test OS →
// boot_complete → power-off). Milestones come from mayu's request log (its own timestamps) and
// QEMU's start and exit. "power-on → running" adds run 1's whole time to run 2's time up to
// boot_complete (the moment between the two runs is not counted). Same images and VM as
// test/netboot-user-net.test.ts.
import { copyFile, rm } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { FIXTURES, startMayu, tempDir, type MayuProcess } from '../test/helpers/mayu-process.ts';
import { ensureNetbootImages, IMAGES_DIR } from '../test/helpers/netboot-images.ts';
import { startNetbootNetns, type Machine, type NetbootNetns } from '../test/helpers/netboot-netns.ts';
import { netnsUnavailable } from '../test/helpers/netns.ts';
import { createBlankDisk, OVMF_VARS, startVm, uefiHttpBootVm, uefiPxeBootVm, userNetdev, type Vm, type VmOptions } from '../test/helpers/qemu.ts';
import { Cleanup, machineBusySeconds, median, round, runBench, selfAndChildrenCpuSeconds, table, waitForQuiet } from './bench-util.ts';

const { values: flags } = parseArgs({
  options: {
    runs: { type: 'string', default: '1' },
    'max-wait': { type: 'string', default: '120' }, // seconds to wait for a quiet machine first
    netns: { type: 'boolean', default: false },
    scenarios: { type: 'string', default: 'bios:1,uefi:1,uefi-http:1,bios:4' }, // --netns: FIRMWARE:VMS, one after another
    vms: { type: 'string' }, // --netns, older form: bios with these VM counts
  },
});
const FIRMWARES = ['bios', 'uefi', 'uefi-http'] as const;
type Firmware = (typeof FIRMWARES)[number];
interface Scenario {
  firmware: Firmware;
  count: number;
}
const SCENARIOS: Scenario[] = (flags.vms ? flags.vms.split(',').map((n) => `bios:${n}`) : flags.scenarios.split(',')).map((text) => {
  const [firmware, n] = text.split(':');
  const count = Number(n);
  if (!FIRMWARES.includes(firmware as Firmware) || !Number.isInteger(count) || count < 1 || count > 16) {
    throw new Error(`--scenarios: ${JSON.stringify(text)} is not FIRMWARE:VMS (firmware ${FIRMWARES.join(', ')}; 1-16 VMs)`);
  }
  return { firmware: firmware as Firmware, count };
});
const RUNS = Math.min(10, Math.max(1, Number(flags.runs)));
const VERSION = '1010.5.0'; // default_coreos_version of test/fixtures/netboot-config.yaml
const RUN_TIMEOUT_MS = 10 * 60_000;

const cleanup = new Cleanup();

/** Milestones of one machine's netboot, in seconds. */
interface Milestones {
  /** From the install run's QEMU start. */
  ipxeBootScript: number;
  firstStageScript: number;
  firstPost: number;
  setInstalled: number;
  installExit: number;
  /** From the disk run's QEMU start. */
  localDiskAnswer: number;
  bootComplete: number;
  diskBootExit: number;
  powerOnToRunning: number;
}

interface RunResult extends Milestones {
  run: number;
}

/** mayu's own timestamp (epoch ms) of the first request log line matching. */
function requestTime(mayu: MayuProcess, method: string, urlPrefix: string, after: number): number {
  const line = mayu.logs.find((l) => l.msg === 'request' && l.method === method && String(l.url).startsWith(urlPrefix) && Number(l.time) >= after);
  if (!line) throw new Error(`no ${method} ${urlPrefix}... in mayu's request log`);
  return Number(line.time);
}

async function oneRun(run: number): Promise<RunResult> {
  const workDir = await tempDir('mayu-bench-netboot-');
  cleanup.add(`remove ${workDir}`, () => rm(workDir, { recursive: true, force: true }));
  const mayu = await startMayu({ workDir, config: path.join(FIXTURES, 'netboot-config.yaml'), imagesDir: IMAGES_DIR });
  cleanup.watchPid(mayu.proc.pid);
  cleanup.add('stop mayu', () => mayu.stop());
  const disk = path.join(workDir, 'disk.raw');
  await createBlankDisk(disk, 64);
  const start = (name: string): Vm => {
    const vm = startVm({
      name,
      consoleLog: path.join(workDir, `console-${name}.log`),
      netdev: userNetdev({ port: mayu.port }),
      mac: '52:54:00:4d:00:02',
      serial: `MAYU-BENCH-${run}`,
      disk,
    });
    cleanup.watchPid(vm.pid);
    cleanup.add(`kill ${name}`, () => vm.kill());
    return vm;
  };
  const check = (vm: Vm, exit: { code: number | null }) => {
    if (exit.code !== 0) throw new Error(`${vm.name}: QEMU exit code ${exit.code}; console tail:\n${vm.console().slice(-2000)}`);
  };

  const t1 = Date.now();
  const install = start('install');
  const e1 = await install.waitForExit(RUN_TIMEOUT_MS);
  check(install, e1);
  const t2 = Date.now();
  const boot = start('disk-boot');
  const e2 = await boot.waitForExit(RUN_TIMEOUT_MS);
  check(boot, e2);
  if (!/mayu-test-os: boot_complete reported/.test(boot.console())) throw new Error(`the test OS did not report boot_complete:\n${boot.console().slice(-2000)}`);

  const s = (t: number, from: number) => round((t - from) / 1000, 1);
  const bootComplete = requestTime(mayu, 'PUT', '/admin/host/', t2);
  const result: RunResult = {
    run,
    ipxeBootScript: s(requestTime(mayu, 'GET', '/ipxebootscript', t1), t1),
    firstStageScript: s(requestTime(mayu, 'GET', '/first-stage-script/', t1), t1),
    firstPost: s(requestTime(mayu, 'POST', '/final-', t1), t1),
    setInstalled: s(requestTime(mayu, 'PUT', '/admin/host/', t1), t1),
    installExit: round(e1.seconds, 1),
    localDiskAnswer: s(requestTime(mayu, 'GET', '/ipxebootscript?', t2), t2),
    bootComplete: s(bootComplete, t2),
    diskBootExit: round(e2.seconds, 1),
    powerOnToRunning: round(e1.seconds + (bootComplete - t2) / 1000, 1),
  };
  await mayu.stop();
  cleanup.unwatchPid(mayu.proc.pid);
  return result;
}

interface VmResult extends Milestones {
  serial: string;
  /** From the install run's QEMU start. */
  dhcpAck: number;
  /** The request for the installer kernel answered; the initramfs fully sent (mayu logs a request at its end). */
  kernelFetched: number;
  initrdFetched: number;
  /** Console: the installer's /init started; its network up (drivers loaded, DHCP); it starts writing the image. */
  installerStarted: number;
  installerNetworkUp: number;
  installerWriting: number;
  /** From the disk run's QEMU start; console: the test OS's /init started; its network up. */
  osStarted: number;
  osNetworkUp: number;
}

/** VmOptions of `firmware` for machine `m` (UEFI: its own copy of OVMF's variables, kept across its runs). */
async function firmwareVm(firmware: Firmware, m: Machine, workDir: string): Promise<Partial<VmOptions>> {
  if (firmware === 'bios') return {};
  const ovmfVars = path.join(workDir, `ovmf-vars-${m.index}.fd`);
  await copyFile(OVMF_VARS, ovmfVars);
  return firmware === 'uefi' ? uefiPxeBootVm(ovmfVars) : uefiHttpBootVm(ovmfVars);
}

/** All VMs of one scenario power on at once; each goes install run → disk run → running. */
async function netnsRun({ firmware, count }: Scenario): Promise<{ vms: VmResult[]; wallSeconds: number; otherCores: number }> {
  // CPU the rest of the machine used meanwhile: everything busy minus this process and what it
  // started (QEMU, mayu and its dnsmasq; counted once they have exited, i.e. after env.cleanup()).
  const busy0 = machineBusySeconds();
  const own0 = selfAndChildrenCpuSeconds();
  const w0 = performance.now();
  const env: NetbootNetns = await startNetbootNetns({ machines: count, serialPrefix: 'MAYU-BENCH' });
  cleanup.add(`netns lab of ${count} VM(s)`, () => env.cleanup());
  cleanup.watchPid(env.mayu.proc.pid);
  const logs = env.mayu.logs;
  const vmOptions = await Promise.all(env.machines.map((m) => firmwareVm(firmware, m, env.workDir)));
  const t0 = Date.now();
  /** One QEMU run; `marks`: epoch ms of the first console line matching each pattern. */
  const runOnce = async (m: Machine, label: string, patterns: RegExp[]) => {
    const startedAt = Date.now();
    const vm = env.startMachine(m, label, vmOptions[m.index - 1]);
    const marks = patterns.map((p) => vm.waitForLine(p, RUN_TIMEOUT_MS).then(() => Date.now(), () => NaN));
    const exit = await vm.waitForExit(RUN_TIMEOUT_MS);
    if (exit.code !== 0) throw new Error(`${vm.name}: QEMU exit ${exit.code}/${exit.signal}; console tail:\n${vm.console().slice(-2000)}`);
    return { vm, exit, startedAt, marks: await Promise.all(marks) };
  };
  const one = async (m: Machine): Promise<VmResult> => {
    const install = await runOnce(m, 'install', [/mayu-installer: started/, /mayu-installer: network up/, /mayu-installer: writing /]);
    const disk = await runOnce(m, 'disk-boot', [/mayu-test-os: started/, /mayu-test-os: network up/]);
    if (!/mayu-test-os: boot_complete reported/.test(disk.vm.console())) throw new Error(`${m.serial}: no boot_complete:\n${disk.vm.console().slice(-2000)}`);
    const requests = logs.filter((l) => l.msg === 'request');
    const chained = requests.find((l) => String(l.url).startsWith(`/ipxebootscript?serial=${m.smbiosSerial}&`));
    const remote = String(chained?.remote ?? '');
    const at = (what: string, match: (l: Record<string, unknown>) => boolean, from: number): number => {
      const line = logs.find((l) => Number(l.time) >= from && match(l));
      if (!line) throw new Error(`${m.serial}: no ${what} in mayu's log`);
      return Number(line.time);
    };
    const req = (method: string, test: (url: string) => boolean) => (l: Record<string, unknown>) =>
      l.msg === 'request' && l.method === method && test(String(l.url));
    const ip = remote.replace(/^::ffff:/, '');
    const fromVm = (method: string, test: (url: string) => boolean) => (l: Record<string, unknown>) => req(method, test)(l) && String(l.remote).replace(/^::ffff:/, '') === ip;
    const s = (t: number, from: number) => round((t - from) / 1000, 1);
    const i0 = install.startedAt;
    const d0 = disk.startedAt;
    const bootComplete = at('boot_complete', req('PUT', (u) => u === `/admin/host/${m.serial}/boot_complete`), d0);
    return {
      serial: m.serial,
      dhcpAck: s(at('DHCPACK', (l) => l.component === 'dnsmasq' && /DHCPACK\(br0\) \S+ (\S+)/.exec(String(l.msg))?.[1] === m.mac, i0), i0),
      ipxeBootScript: s(at('chained /ipxebootscript', (l) => l === chained, i0), i0),
      kernelFetched: s(at('kernel', fromVm('GET', (u) => u.startsWith('/images/vmlinuz')), i0), i0),
      initrdFetched: s(at('initramfs', fromVm('GET', (u) => u.startsWith('/images/initrd')), i0), i0),
      installerStarted: s(install.marks[0]!, i0),
      installerNetworkUp: s(install.marks[1]!, i0),
      installerWriting: s(install.marks[2]!, i0),
      firstStageScript: s(at('first-stage script', req('GET', (u) => u.toLowerCase().split('?')[0] === `/first-stage-script/${m.serial}`), i0), i0),
      firstPost: s(at('final-config POST', fromVm('POST', (u) => u.startsWith('/final-')), i0), i0),
      setInstalled: s(at('set_installed', req('PUT', (u) => u === `/admin/host/${m.serial}/set_installed`), i0), i0),
      installExit: round(install.exit.seconds, 1),
      localDiskAnswer: s(at('local-disk answer', (l) => l.msg === 'request' && l.boot === 'local-disk' && String(l.url).startsWith(`/ipxebootscript?serial=${m.smbiosSerial}&`), d0), d0),
      osStarted: s(disk.marks[0]!, d0),
      osNetworkUp: s(disk.marks[1]!, d0),
      bootComplete: s(bootComplete, d0),
      diskBootExit: round(disk.exit.seconds, 1),
      powerOnToRunning: round(install.exit.seconds + (bootComplete - d0) / 1000, 1),
    };
  };
  const settled = await Promise.allSettled(env.machines.map(one));
  const wallSeconds = round((Date.now() - t0) / 1000, 1);
  const failed = settled.flatMap((r) => (r.status === 'rejected' ? [String((r.reason as Error).message)] : []));
  if (failed.length) throw new Error(failed.join('\n\n'));
  await env.cleanup();
  cleanup.unwatchPid(env.mayu.proc.pid);
  const others = machineBusySeconds() - busy0 - (selfAndChildrenCpuSeconds() - own0);
  const otherCores = round(Math.max(0, others) / ((performance.now() - w0) / 1000), 2);
  return { vms: settled.map((r) => (r as PromiseFulfilledResult<VmResult>).value), wallSeconds, otherCores };
}

/** Milestones after the boot script, the same in both modes. */
const LATER_MILESTONES = [
  ['install run: installer fetches its first-stage script', 'firstStageScript'],
  ['install run: first POST (final config)', 'firstPost'],
  ['install run: set_installed', 'setInstalled'],
  ['install run: QEMU exits at the reboot', 'installExit'],
  ['disk run: boot script answers local-disk', 'localDiskAnswer'],
  ['disk run: boot_complete (running)', 'bootComplete'],
  ['disk run: QEMU exits at the power-off', 'diskBootExit'],
  ['power-on → running (install run + disk run to boot_complete)', 'powerOnToRunning'],
] as const;

const NETNS_MILESTONES = [
  ['install run: dnsmasq DHCPACK (first)', 'dhcpAck'],
  ['install run: iPXE fetches /ipxebootscript?serial=…', 'ipxeBootScript'],
  ['install run: installer kernel sent', 'kernelFetched'],
  ['install run: installer initramfs sent', 'initrdFetched'],
  ['install run: installer /init started (console)', 'installerStarted'],
  ['install run: installer network up: drivers, DHCP (console)', 'installerNetworkUp'],
  ...LATER_MILESTONES.slice(0, 2),
  ['install run: installer starts writing the image (console)', 'installerWriting'],
  ...LATER_MILESTONES.slice(2, 5),
  ['disk run: test OS /init started (console)', 'osStarted'],
  ['disk run: test OS network up: drivers, config read, DHCP (console)', 'osNetworkUp'],
  ...LATER_MILESTONES.slice(5),
] as const;

async function netnsMain(): Promise<void> {
  const summary: string[] = [];
  for (const [i, scenario] of SCENARIOS.entries()) {
    const { firmware, count } = scenario;
    const runs: VmResult[][] = [];
    const walls: number[] = [];
    const others: number[] = [];
    const loads: string[] = [];
    for (let run = 1; run <= RUNS; run++) {
      // Other work on the machine skews TCG times: wait for quiet before every run, not only the first.
      if (run > 1 || i > 0) {
        const q = await waitForQuiet(Number(flags['max-wait']));
        if (!q.quiet) console.log(`NOT quiet before this run (${q.busyCores} cores busy)`);
      }
      const load = loadavg().map((x) => x.toFixed(2)).join(' ');
      const r = await netnsRun(scenario);
      walls.push(r.wallSeconds);
      others.push(r.otherCores);
      loads.push(load);
      runs.push(r.vms);
      console.log(`${firmware}, ${count} VM(s) at once, run ${run} (load average before: ${load}): power-on → running ${r.vms.map((v) => `${v.serial} ${v.powerOnToRunning} s`).join(', ')}; all QEMU runs done after ${r.wallSeconds} s; other processes kept ${r.otherCores} cores busy meanwhile`);
    }
    // One column per run: the median over that run's VMs (the per-VM power-on → running is printed above).
    console.log(`\n${firmware}: ${count} VM(s) powered on at once, netns + mayu's dnsmasq, TCG, ${RUNS} run(s): seconds since each VM's QEMU start${count > 1 ? ', median of the VMs of a run' : ''}`);
    const all = runs.flat();
    const col = (k: keyof VmResult) => all.map((v) => v[k] as number);
    const perRun = (k: keyof VmResult) => runs.map((vms) => round(median(vms.map((v) => v[k] as number)), 1));
    console.log(table(
      ['milestone', ...runs.map((_, r) => `run ${r + 1}`), 'median (all VMs)', 'max (all VMs)'],
      NETNS_MILESTONES.map(([label, k]) => [label, ...perRun(k), round(median(col(k)), 1), Math.max(...col(k))]),
    ));
    console.log(`all VMs' QEMU runs done (wall): ${walls.join(', ')} s; other processes' load meanwhile: ${others.join(', ')} cores; load average before each run: ${loads.join(' | ')}\n`);
    summary.push(`${firmware} × ${count}: power-on → running median ${round(median(col('powerOnToRunning')), 1)} s, max ${Math.max(...col('powerOnToRunning'))} s`);
  }
  console.log(summary.join('\n'));
}

async function main(): Promise<void> {
  const built = await ensureNetbootImages(VERSION, (line) => console.log(line));
  const quiet = await waitForQuiet(Number(flags['max-wait']));
  console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}; ${quiet.quiet ? 'quiet' : `NOT quiet (${round(quiet.busyCores)} cores busy)`} before the runs`);
  console.log('\nImages (npm run build:images; sizes in bytes):');
  console.log(table(['file', 'bytes'], Object.entries(built.sizes).map(([f, b]) => [f, b])));
  console.log(table(['uncompressed', 'bytes'], Object.entries(built.uncompressed).map(([f, b]) => [f, b])));
  if (flags.netns) {
    const why = netnsUnavailable();
    if (why) throw new Error(`--netns: ${why}`);
    await netnsMain();
    return;
  }
  const results: RunResult[] = [];
  for (let run = 1; run <= RUNS; run++) {
    const r = await oneRun(run);
    console.log(`run ${run}: power-on → running ${r.powerOnToRunning} s`);
    results.push(r);
  }
  console.log(`\nOne VM, QEMU user networking, TCG, ${RUNS} run(s): seconds since the QEMU start of each run`);
  const col = (k: keyof RunResult) => results.map((r) => r[k] as number);
  console.log(table(['milestone', ...results.map((r) => `run ${r.run}`), 'median'], ([
    ['install run: iPXE fetches /ipxebootscript', 'ipxeBootScript'],
    ...LATER_MILESTONES,
  ] as const).map(([label, k]) => [label, ...col(k), round(median(col(k)), 1)])));
}

await runBench(main, cleanup);

// Power-on → `running` of VMs netbooting through mayu (TCG), and the sizes of the images they boot.
//   npm run bench:netboot -- [--runs 1] [--max-wait 120]            one VM, QEMU user networking
//   npm run bench:netboot -- --netns [--vms 1,4] [--runs 1]         mayu's own dnsmasq in a network
//                                                                   namespace: 1 VM alone, then 4 at once
//
// --netns (root): as test/netboot-e2e-netns.test.ts, a fresh namespace, mayu and cluster per run;
// the VMs sit on taps of bridge br0 and get DHCP from mayu's dnsmasq; all VMs of a run power on
// at once. Per VM: install run, then disk run, as below; milestones from mayu's log (requests
// attributed to a VM by its serial, or by its leased address for the URLs that carry none).
//
// Default mode:
// Per run: a fresh cluster and blank disk; QEMU run 1 (netboot → installer → image + config on
// disk → reboot, -no-reboot ends it), QEMU run 2 (netboot → iPXE exit → disk → test OS →
// boot_complete → power-off). Milestones come from mayu's request log (its own timestamps) and
// QEMU's start and exit. "power-on → running" adds run 1's whole time to run 2's time up to
// boot_complete (the moment between the two runs is not counted). Same images and VM as
// test/netboot-user-net.test.ts.
import { rm } from 'node:fs/promises';
import { cpus } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { FIXTURES, startMayu, tempDir, type MayuProcess } from '../test/helpers/mayu-process.ts';
import { ensureNetbootImages, IMAGES_DIR } from '../test/helpers/netboot-images.ts';
import { startNetbootNetns, type Machine, type NetbootNetns } from '../test/helpers/netboot-netns.ts';
import { netnsUnavailable } from '../test/helpers/netns.ts';
import { createBlankDisk, startVm, userNetdev, type Vm } from '../test/helpers/qemu.ts';
import { Cleanup, machineBusySeconds, median, round, runBench, selfAndChildrenCpuSeconds, table, waitForQuiet } from './bench-util.ts';

const { values: flags } = parseArgs({
  options: {
    runs: { type: 'string', default: '1' },
    'max-wait': { type: 'string', default: '120' }, // seconds to wait for a quiet machine first
    netns: { type: 'boolean', default: false },
    vms: { type: 'string', default: '1,4' }, // --netns: VMs powered on at once, one scenario each
  },
});
const VM_COUNTS = flags.vms.split(',').map(Number).filter((n) => Number.isInteger(n) && n >= 1 && n <= 16);
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
}

/** All VMs of one scenario power on at once; each goes install run → disk run → running. */
async function netnsRun(count: number): Promise<{ vms: VmResult[]; wallSeconds: number; otherCores: number }> {
  // CPU the rest of the machine used meanwhile: everything busy minus this process and what it
  // started (QEMU, mayu and its dnsmasq; counted once they have exited, i.e. after env.cleanup()).
  const busy0 = machineBusySeconds();
  const own0 = selfAndChildrenCpuSeconds();
  const w0 = performance.now();
  const env: NetbootNetns = await startNetbootNetns({ machines: count, serialPrefix: 'MAYU-BENCH' });
  cleanup.add(`netns lab of ${count} VM(s)`, () => env.cleanup());
  cleanup.watchPid(env.mayu.proc.pid);
  const logs = env.mayu.logs;
  const t0 = Date.now();
  const one = async (m: Machine): Promise<VmResult> => {
    const install = await env.runVm(m, 'install', RUN_TIMEOUT_MS);
    const disk = await env.runVm(m, 'disk-boot', RUN_TIMEOUT_MS);
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
    const s = (t: number, from: number) => round((t - from) / 1000, 1);
    const i0 = install.startedAt;
    const d0 = disk.startedAt;
    const bootComplete = at('boot_complete', req('PUT', (u) => u === `/admin/host/${m.serial}/boot_complete`), d0);
    return {
      serial: m.serial,
      dhcpAck: s(at('DHCPACK', (l) => l.component === 'dnsmasq' && /DHCPACK\(br0\) \S+ (\S+)/.exec(String(l.msg))?.[1] === m.mac, i0), i0),
      ipxeBootScript: s(at('chained /ipxebootscript', (l) => l === chained, i0), i0),
      firstStageScript: s(at('first-stage script', req('GET', (u) => u.toLowerCase() === `/first-stage-script/${m.serial}`), i0), i0),
      firstPost: s(at('final-config POST', (l) => req('POST', (u) => u.startsWith('/final-'))(l) && String(l.remote).replace(/^::ffff:/, '') === ip, i0), i0),
      setInstalled: s(at('set_installed', req('PUT', (u) => u === `/admin/host/${m.serial}/set_installed`), i0), i0),
      installExit: round(install.exit.seconds, 1),
      localDiskAnswer: s(at('local-disk answer', (l) => l.msg === 'request' && l.boot === 'local-disk' && String(l.url).startsWith(`/ipxebootscript?serial=${m.smbiosSerial}&`), d0), d0),
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
  ...LATER_MILESTONES,
] as const;

async function netnsMain(): Promise<void> {
  for (const count of VM_COUNTS) {
    const runs: VmResult[][] = [];
    const walls: number[] = [];
    const others: number[] = [];
    for (let run = 1; run <= RUNS; run++) {
      // Other work on the machine skews TCG times: wait for quiet before every run, not only the first.
      if (run > 1 || count !== VM_COUNTS[0]) {
        const q = await waitForQuiet(Number(flags['max-wait']));
        if (!q.quiet) console.log(`NOT quiet before this run (${q.busyCores} cores busy)`);
      }
      const r = await netnsRun(count);
      walls.push(r.wallSeconds);
      others.push(r.otherCores);
      runs.push(r.vms);
      console.log(`${count} VM(s) at once, run ${run}: power-on → running ${r.vms.map((v) => `${v.serial} ${v.powerOnToRunning} s`).join(', ')}; all QEMU runs done after ${r.wallSeconds} s; other processes kept ${r.otherCores} cores busy meanwhile`);
    }
    // One column per run: the median over that run's VMs (the per-VM power-on → running is printed above).
    console.log(`\n${count} VM(s) powered on at once, netns + mayu's dnsmasq, TCG, ${RUNS} run(s): seconds since each VM's QEMU start${count > 1 ? ', median of the VMs of a run' : ''}`);
    const all = runs.flat();
    const col = (k: keyof VmResult) => all.map((v) => v[k] as number);
    const perRun = (k: keyof VmResult) => runs.map((vms) => round(median(vms.map((v) => v[k] as number)), 1));
    console.log(table(
      ['milestone', ...runs.map((_, i) => `run ${i + 1}`), 'median (all VMs)', 'max (all VMs)'],
      NETNS_MILESTONES.map(([label, k]) => [label, ...perRun(k), round(median(col(k)), 1), Math.max(...col(k))]),
    ));
    console.log(`all VMs' QEMU runs done (wall): ${walls.join(', ')} s; other processes' load meanwhile: ${others.join(', ')} cores\n`);
  }
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

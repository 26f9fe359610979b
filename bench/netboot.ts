// Power-on → `running` of one VM netbooting through mayu (QEMU user networking, TCG), and the
// sizes of the images it boots.
//   npm run bench:netboot -- [--runs 1] [--max-wait 120]
//
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
import { createBlankDisk, startVm, userNetdev, type Vm } from '../test/helpers/qemu.ts';
import { Cleanup, median, round, runBench, table, waitForQuiet } from './bench-util.ts';

const { values: flags } = parseArgs({
  options: {
    runs: { type: 'string', default: '1' },
    'max-wait': { type: 'string', default: '120' }, // seconds to wait for a quiet machine first
  },
});
const RUNS = Math.min(10, Math.max(1, Number(flags.runs)));
const VERSION = '1010.5.0'; // default_coreos_version of test/fixtures/netboot-config.yaml
const RUN_TIMEOUT_MS = 10 * 60_000;

const cleanup = new Cleanup();

interface RunResult {
  run: number;
  /** Seconds from QEMU run 1 start. */
  ipxeBootScript: number;
  firstStageScript: number;
  firstPost: number;
  setInstalled: number;
  installExit: number;
  /** Seconds from QEMU run 2 start. */
  localDiskAnswer: number;
  bootComplete: number;
  diskBootExit: number;
  powerOnToRunning: number;
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

async function main(): Promise<void> {
  const built = await ensureNetbootImages(VERSION, (line) => console.log(line));
  const quiet = await waitForQuiet(Number(flags['max-wait']));
  console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}; ${quiet.quiet ? 'quiet' : `NOT quiet (${round(quiet.busyCores)} cores busy)`} before the runs`);
  const results: RunResult[] = [];
  for (let run = 1; run <= RUNS; run++) {
    const r = await oneRun(run);
    console.log(`run ${run}: power-on → running ${r.powerOnToRunning} s`);
    results.push(r);
  }

  console.log('\nImages (npm run build:images; sizes in bytes):');
  console.log(table(['file', 'bytes'], Object.entries(built.sizes).map(([f, b]) => [f, b])));
  console.log(table(['uncompressed', 'bytes'], Object.entries(built.uncompressed).map(([f, b]) => [f, b])));
  console.log(`\nOne VM, QEMU user networking, TCG, ${RUNS} run(s): seconds since the QEMU start of each run`);
  const col = (k: keyof RunResult) => results.map((r) => r[k] as number);
  console.log(table(['milestone', ...results.map((r) => `run ${r.run}`), 'median'], ([
    ['install run: iPXE fetches /ipxebootscript', 'ipxeBootScript'],
    ['install run: installer fetches its first-stage script', 'firstStageScript'],
    ['install run: first POST (final config)', 'firstPost'],
    ['install run: set_installed', 'setInstalled'],
    ['install run: QEMU exits at the reboot', 'installExit'],
    ['disk run: boot script answers local-disk', 'localDiskAnswer'],
    ['disk run: boot_complete (running)', 'bootComplete'],
    ['disk run: QEMU exits at the power-off', 'diskBootExit'],
    ['power-on → running (install run + disk run to boot_complete)', 'powerOnToRunning'],
  ] as const).map(([label, k]) => [label, ...col(k), round(median(col(k)), 1)])));
}

await runBench(main, cleanup);

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { mbrSector, SECTOR } from '../scripts/images/mbr.ts';
import { decodeHost } from '../src/core/host.ts';
import { git, gitSubjects } from './helpers/git.ts';
import { FIXTURES, startMayu, tempDir, type MayuProcess } from './helpers/mayu-process.ts';
import { ensureNetbootImages, IMAGES_DIR } from './helpers/netboot-images.ts';
import { createBlankDisk, startVm, userNetdev, type DiskBus, type Vm } from './helpers/qemu.ts';

// The installer on the hardware of real racks, as far as QEMU emulates it: one row per NIC model
// and disk controller (and a machine with a dead NIC first, and one with several disks). Each VM
// boots the real installer kernel and initramfs directly (the PXE/iPXE part is the same for every
// row and is covered by the netboot tests), over QEMU user networking to the real mayu. The OS
// image is tiny, so a row checks in seconds what differs between machines: the drivers the
// coldplug loads, the network, registration, the disk chosen and the install reported to mayu.

const CONFIG = path.join(FIXTURES, 'netboot-matrix-config.yaml');
const RUN_TIMEOUT_MS = 6 * 60_000;
/** VMs at once: TCG is one busy thread per VM on a 2-core machine. */
const PARALLEL = 2;

interface Row {
  name: string;
  nic: string;
  /** Driver the coldplug must load for the NIC. */
  nicDriver: RegExp;
  disks: { bus: DiskBus; sizeMb: number; serial?: string }[];
  diskDriver: string;
  /** The disk the installer must choose (its kernel name). */
  chosen: string;
  deadNics?: string[];
  /** NIC models placed first of all, without link (no carrier: skipped without a DHCP try). */
  noLinkNics?: string[];
  /** A host override set before the machine boots. */
  installDisk?: string;
}

/** A machine whose install must stop before the first-stage script: one ERROR line, power off. */
interface FailRow {
  name: string;
  nic: string;
  /** The one ERROR line (after "mayu-installer: ERROR: "). */
  error: RegExp;
  /** Path of next-script on mayu (default /first-stage-script/__SERIAL__). */
  nextScript?: string;
  /** Which mayu it boots from: the matrix's (report tokens required) or one run with --insecure-reports. */
  mayu: 'secure' | 'insecure';
  /** What the installer says about its tokenless report to mayu (undefined: it has no network to try). */
  report?: RegExp;
}

const ROWS: Row[] = [
  { name: 'e1000-ahci', nic: 'e1000', nicDriver: /^e1000$/, disks: [{ bus: 'ahci', sizeMb: 64 }], diskDriver: 'ahci', chosen: 'sda' },
  { name: 'e1000e-nvme', nic: 'e1000e', nicDriver: /^e1000e$/, disks: [{ bus: 'nvme', sizeMb: 64 }], diskDriver: 'nvme', chosen: 'nvme0n1' },
  { name: 'rtl8139-virtio-scsi', nic: 'rtl8139', nicDriver: /^8139(too|cp)$/, disks: [{ bus: 'virtio-scsi', sizeMb: 64 }], diskDriver: 'virtio_scsi', chosen: 'sda' },
  { name: 'vmxnet3-megasas', nic: 'vmxnet3', nicDriver: /^vmxnet3$/, disks: [{ bus: 'megasas', sizeMb: 64 }], diskDriver: 'megaraid_sas', chosen: 'sda' },
  // The NIC that reaches mayu is not the first: the first two sit on a segment without DHCP. Of
  // two disks, auto takes the smaller one.
  {
    name: 'dead-nics-first-two-disks', nic: 'virtio-net-pci', nicDriver: /^virtio_net$/, deadNics: ['e1000', 'e1000e'],
    disks: [{ bus: 'nvme', sizeMb: 96 }, { bus: 'virtio-blk', sizeMb: 48 }], diskDriver: 'virtio_blk', chosen: 'vda',
  },
  // A NIC without link (cable unplugged) first: skipped at once, no DHCP try; the second NIC reaches mayu.
  { name: 'no-link-nic-first', nic: 'virtio-net-pci', nicDriver: /^virtio_net$/, noLinkNics: ['e1000e'], disks: [{ bus: 'virtio-blk', sizeMb: 64 }], diskDriver: 'virtio_blk', chosen: 'vda' },
  // install_disk by serial picks exactly that disk, though auto would take the other (smaller) one.
  {
    name: 'serial-selection', nic: 'e1000', nicDriver: /^e1000$/, installDisk: 'serial:MAYU-DISK-B',
    disks: [{ bus: 'virtio-blk', sizeMb: 48, serial: 'MAYU-DISK-A' }, { bus: 'virtio-blk', sizeMb: 64, serial: 'MAYU-DISK-B' }], diskDriver: 'virtio_blk', chosen: 'vdb',
  },
];

const FAIL_ROWS: FailRow[] = [
  // AMD PCnet: a NIC the installer has no driver for, the machine's only one.
  {
    name: 'no-nic-driver', nic: 'pcnet', mayu: 'secure',
    error: /^no network interface: no driver for network controller\(s\) 1022:2000 \(PCI vendor:device\)$/,
  },
  // mayu answers the first-stage script with a 404: no retry; the tokenless report is refused
  // (403, nothing written) by a mayu that requires report tokens ...
  {
    name: 'first-stage-404', nic: 'virtio-net-pci', mayu: 'secure', nextScript: '/first-stage-script-gone/__SERIAL__',
    error: /^cannot fetch http:\/\/10\.0\.2\.100:\d+\/first-stage-script-gone\/MAYU-HW-FIRST-STAGE-404: mayu answered 404 Not Found$/,
    report: /^mayu-installer: could not report the failure to mayu \(answer: 403; before the first-stage script there is no report token\)$/m,
  },
  // ... and recorded by one run with --insecure-reports, for a serial it knows.
  {
    name: 'first-stage-404-insecure', nic: 'virtio-net-pci', mayu: 'insecure', nextScript: '/first-stage-script-gone/__SERIAL__',
    error: /^cannot fetch http:\/\/10\.0\.2\.100:\d+\/first-stage-script-gone\/MAYU-HW-FIRST-STAGE-404-INSECURE: mayu answered 404 Not Found$/,
    report: /^mayu-installer: failure reported to mayu \(without a report token: mayu runs --insecure-reports\)$/m,
  },
];

/** A 3 MiB disk image: MBR, an empty partition 1 and partition 2 for the config archive. */
function tinyImage(): Buffer {
  const mib = 2048;
  const disk = Buffer.alloc(3 * mib * SECTOR);
  mbrSector(Buffer.alloc(440), [{ start: mib, sectors: mib, type: 0x83, bootable: true }, { start: 2 * mib, sectors: mib, type: 0xda }], 0x74696e79).copy(disk, 0);
  return disk;
}

async function runLimited<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  await Promise.all(Array.from({ length: limit }, async () => {
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) await fn(item);
  }));
}

describe('the installer on real racks\' NICs and disk controllers (QEMU models)', { timeout: 30 * 60_000 }, () => {
  let workDir: string;
  let imagesDir: string;
  let mayu: MayuProcess | undefined;
  let insecureMayu: MayuProcess | undefined;
  const vms: Vm[] = [];
  const consoles = new Map<string, string>();
  const failures = new Map<string, Error>();

  before(async () => {
    await ensureNetbootImages('1010.5.0');
    workDir = await tempDir('mayu-matrix-');
    imagesDir = path.join(workDir, 'images');
    await mkdir(path.join(imagesDir, 'tiny'), { recursive: true });
    for (const f of ['vmlinuz', 'initrd.cpio.gz']) await symlink(path.join(IMAGES_DIR, f), path.join(imagesDir, f));
    const raw = path.join(imagesDir, 'tiny', 'install_image.bin');
    await writeFile(raw, tinyImage());
    execFileSync('bzip2', ['-9', raw]);
    mayu = await startMayu({ workDir, config: CONFIG, imagesDir });
    await mkdir(path.join(workDir, 'insecure'));
    insecureMayu = await startMayu({ workDir: path.join(workDir, 'insecure'), config: CONFIG, imagesDir, args: ['--insecure-reports'] });

    /** One installer VM booted directly from the kernel and initramfs; its console kept under `name`. */
    const boot = async (name: string, o: { nic: string; mac: string; target: MayuProcess; nextScript?: string; deadNicsBefore?: { model: string; mac: string; link?: 'up' | 'down' }[]; disks?: { file: string; bus: DiskBus; serial?: string }[] }) => {
      const url = `http://10.0.2.100:${o.target.port}`;
      const vm = startVm({
        name,
        consoleLog: path.join(workDir, `console-${name}.log`),
        netdev: userNetdev({ port: o.target.port }),
        nicModel: o.nic,
        mac: o.mac,
        deadNicsBefore: o.deadNicsBefore,
        serial: `MAYU-HW-${name}`.toUpperCase(),
        disks: o.disks,
        memoryMb: 384,
        extraArgs: ['-kernel', path.join(imagesDir, 'vmlinuz'), '-initrd', path.join(imagesDir, 'initrd.cpio.gz'),
          '-append', `console=ttyS0,115200n8 panic=1 quiet mayu=${url} next-script=${url}${o.nextScript ?? '/first-stage-script/__SERIAL__'}`],
      });
      vms.push(vm);
      try {
        const exit = await vm.waitForExit(RUN_TIMEOUT_MS);
        if (exit.code !== 0) throw new Error(`QEMU exit ${exit.code}/${exit.signal}`);
      } catch (err) {
        failures.set(name, err as Error);
      }
      consoles.set(name, vm.console());
    };

    // Every row at once, PARALLEL VMs at a time; each `it` below then checks its own row.
    const jobs = [
      ...ROWS.map((row) => () => bootRow(row)),
      ...FAIL_ROWS.map((row, i) => async () => {
        const target = row.mayu === 'secure' ? mayu! : insecureMayu!;
        // The insecure mayu knows the serial (registered once), so it can record the report.
        if (row.mayu === 'insecure') assert.equal((await fetch(`${target.url}/first-stage-script/MAYU-HW-${row.name.toUpperCase()}`)).status, 200);
        await boot(row.name, { nic: row.nic, mac: `52:54:00:4d:1f:${(i + 1).toString(16).padStart(2, '0')}`, target, nextScript: row.nextScript });
      }),
    ];
    await runLimited(jobs, PARALLEL, (job) => job());

    async function bootRow(row: Row): Promise<void> {
      const serial = `MAYU-HW-${row.name}`.toUpperCase();
      if (row.installDisk) {
        // Registered first, so the override is in place when the installer asks for its script.
        assert.equal((await fetch(`${mayu!.url}/first-stage-script/${serial}`)).status, 200);
        const res = await fetch(`${mayu!.url}/admin/host/${serial.toLowerCase()}/override`, { method: 'PUT', body: JSON.stringify({ Overrides: { install_disk: row.installDisk } }) });
        assert.equal(res.status, 202, await res.text());
      }
      const disks = [];
      for (const [i, d] of row.disks.entries()) {
        const file = path.join(workDir, `${row.name}-disk${i}.raw`);
        await createBlankDisk(file, d.sizeMb);
        disks.push({ file, bus: d.bus, serial: d.serial });
      }
      const index = ROWS.indexOf(row);
      const deadNicsBefore = [
        ...(row.noLinkNics ?? []).map((model, i) => ({ model, mac: `52:54:00:4d:d0:${(index * 4 + i).toString(16).padStart(2, '0')}`, link: 'down' as const })),
        ...(row.deadNics ?? []).map((model, i) => ({ model, mac: `52:54:00:4d:de:${(index * 4 + i).toString(16).padStart(2, '0')}` })),
      ];
      await boot(row.name, { nic: row.nic, mac: `52:54:00:4d:10:${(index + 1).toString(16).padStart(2, '0')}`, target: mayu!, deadNicsBefore, disks });
    }
  }, { timeout: 25 * 60_000 });

  after(async () => {
    for (const vm of vms) await vm.kill();
    await mayu?.stop();
    await insecureMayu?.stop();
    await rm(workDir, { recursive: true, force: true });
  });

  for (const row of ROWS) {
    it(`${row.name}: loads ${row.nicDriver.source.replace(/[\^$]/g, '')} and ${row.diskDriver}, registers, installs on /dev/${row.chosen}`, async () => {
      const text = consoles.get(row.name) ?? '';
      const tail = text.split('\n').slice(-40).join('\n');
      assert.equal(failures.get(row.name), undefined, `${failures.get(row.name)?.message}; console tail:\n${tail}`);
      const loaded = [...text.matchAll(/^mayu-coldplug: loaded (\S+)$/gm)].map((m) => m[1]!);
      assert.ok(loaded.some((m) => row.nicDriver.test(m)), `NIC driver not loaded (loaded: ${loaded.join(' ')})`);
      assert.ok(loaded.includes(row.diskDriver), `disk driver ${row.diskDriver} not loaded (loaded: ${loaded.join(' ')})`);
      assert.doesNotMatch(text, /mayu-installer: ERROR/, tail);
      assert.doesNotMatch(text, /WARNING: no driver for (network|storage) controller (?!8086:7010)/, 'a NIC or disk controller (other than QEMU\'s PIIX IDE) without a driver');
      assert.equal(text.match(/^mayu-installer: eth\d+ \([0-9a-f:]+\): no DHCP answer$/gm)?.length ?? 0, (row.deadNics ?? []).length, 'one DHCP miss per NIC on a dead segment');
      assert.equal(text.match(/^mayu-installer: eth\d+ \([0-9a-f:]+\): no link, skipped$/gm)?.length ?? 0, (row.noLinkNics ?? []).length, 'one "no link" per NIC without link');
      assert.match(text, /mayu-installer: network up on eth\d+/);
      assert.match(text, new RegExp(`^mayu-installer: install disk: /dev/${row.chosen} \\(install_disk ${row.installDisk ?? 'auto'}\\)$`, 'm'));
      assert.match(text, /mayu-installer: installed \(mayu answered 202\); rebooting/);

      const serial = `mayu-hw-${row.name}`;
      const host = decodeHost(JSON.parse(git(mayu!.clusterDir, 'show', `HEAD:${serial}/conf.json`)));
      assert.equal(host.State, 'installed');
      const nicIndex = (row.deadNics ?? []).length + (row.noLinkNics ?? []).length;
      assert.equal(host.ConnectedNIC, `eth${nicIndex}`, 'the NIC that reached mayu');
      assert.equal(host.MacAddresses?.length, nicIndex + 1, 'every NIC reported');
      // The first-stage request named every NIC with its driver (profile selectors at creation):
      // the console says which, mayu's request log has them as ?nic=.
      const named = /^mayu-installer: NICs named to mayu \(mac,driver\): (.+)$/m.exec(text)?.[1]?.split(' ') ?? [];
      assert.equal(named.length, nicIndex + 1, named.join(' '));
      assert.ok(named.some((f) => row.nicDriver.test(f.split(',')[1] ?? '')), `the NIC driver in ${named.join(' ')}`);
      const asked = mayu!.logs.find((l) => l.msg === 'request' && String(l.url).startsWith(`/first-stage-script/${serial.toUpperCase()}?`));
      assert.deepEqual(new URLSearchParams(String(asked?.url).split('?')[1]).getAll('nic'), named, 'the same NICs in the request');
      assert.equal(gitSubjects(mayu!.clusterDir).filter((s) => s.startsWith(`${serial}: `)).at(-1), `${serial}: updated state to installed`);
    });
  }

  for (const row of FAIL_ROWS) {
    it(`${row.name}: one ERROR line, power off (no reboot), ${row.report ? 'a tokenless report' : 'no report'} to mayu`, async () => {
      const text = consoles.get(row.name) ?? '';
      const tail = text.split('\n').slice(-40).join('\n');
      assert.equal(failures.get(row.name), undefined, `${failures.get(row.name)?.message}; console tail:\n${tail}`);
      const errors = text.split('\n').filter((l) => l.startsWith('mayu-installer: ERROR'));
      assert.equal(errors.length, 1, tail);
      assert.match(errors[0]!.slice('mayu-installer: ERROR: '.length), row.error);
      assert.match(text, /^mayu-installer: powering off$/m);
      assert.match(text, /reboot: Power down/, 'the kernel powered off');
      assert.doesNotMatch(text, /reboot: Restarting/);
      assert.equal(text.match(/mayu-installer: started/g)?.length, 1, 'the installer ran once');
      assert.doesNotMatch(text, /retrying in/, 'a 4xx is not retried');
      const serial = `mayu-hw-${row.name}`;
      const target = row.mayu === 'secure' ? mayu! : insecureMayu!;
      const reports = target.logs.filter((l) => l.msg === 'request' && l.method === 'PUT' && String(l.url).toLowerCase() === `/admin/host/${serial}/install_failed`);
      if (!row.report) {
        assert.equal(reports.length, 0, 'no network: no report');
        return;
      }
      assert.match(text, row.report);
      assert.equal(reports.length, 1);
      const subjects = gitSubjects(target.clusterDir).filter((s) => s.startsWith(`${serial}: `));
      if (row.mayu === 'secure') {
        assert.equal(reports[0]!.status, 403);
        assert.deepEqual(subjects, [], 'the refused report wrote nothing');
      } else {
        assert.equal(reports[0]!.status, 202);
        assert.equal(subjects.at(-1), `${serial}: install failed (network): ${errors[0]!.slice('mayu-installer: ERROR: '.length)}`);
        const recorded = JSON.parse(git(target.clusterDir, 'show', `HEAD:${serial}/install-failures.json`)) as { Failures: { Stage: string; Reason: string }[] };
        assert.equal(recorded.Failures[0]?.Stage, 'network');
      }
    });
  }
});

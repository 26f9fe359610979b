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
  /** A host override set before the machine boots. */
  installDisk?: string;
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
  // install_disk by serial picks exactly that disk, though auto would take the other (smaller) one.
  {
    name: 'serial-selection', nic: 'e1000', nicDriver: /^e1000$/, installDisk: 'serial:MAYU-DISK-B',
    disks: [{ bus: 'virtio-blk', sizeMb: 48, serial: 'MAYU-DISK-A' }, { bus: 'virtio-blk', sizeMb: 64, serial: 'MAYU-DISK-B' }], diskDriver: 'virtio_blk', chosen: 'vdb',
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

    // Every row at once, PARALLEL VMs at a time; each `it` below then checks its own row.
    await runLimited(ROWS, PARALLEL, async (row) => {
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
      const url = `http://10.0.2.100:${mayu!.port}`;
      const vm = startVm({
        name: row.name,
        consoleLog: path.join(workDir, `console-${row.name}.log`),
        netdev: userNetdev({ port: mayu!.port }),
        nicModel: row.nic,
        mac: `52:54:00:4d:10:${(ROWS.indexOf(row) + 1).toString(16).padStart(2, '0')}`,
        deadNicsBefore: (row.deadNics ?? []).map((model, i) => ({ model, mac: `52:54:00:4d:de:${(ROWS.indexOf(row) * 4 + i).toString(16).padStart(2, '0')}` })),
        serial,
        disks,
        memoryMb: 384,
        extraArgs: ['-kernel', path.join(imagesDir, 'vmlinuz'), '-initrd', path.join(imagesDir, 'initrd.cpio.gz'),
          '-append', `console=ttyS0,115200n8 panic=1 quiet mayu=${url} next-script=${url}/first-stage-script/__SERIAL__`],
      });
      vms.push(vm);
      try {
        const exit = await vm.waitForExit(RUN_TIMEOUT_MS);
        if (exit.code !== 0) throw new Error(`QEMU exit ${exit.code}/${exit.signal}`);
      } catch (err) {
        failures.set(row.name, err as Error);
      }
      consoles.set(row.name, vm.console());
    });
  }, { timeout: 25 * 60_000 });

  after(async () => {
    for (const vm of vms) await vm.kill();
    await mayu?.stop();
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
      for (const _ of row.deadNics ?? []) assert.match(text, /mayu-installer: \S+ \([0-9a-f:]+\): no DHCP answer/);
      assert.match(text, /mayu-installer: network up on eth\d+/);
      assert.match(text, new RegExp(`^mayu-installer: install disk: /dev/${row.chosen} \\(install_disk ${row.installDisk ?? 'auto'}\\)$`, 'm'));
      assert.match(text, /mayu-installer: installed \(mayu answered 202\); rebooting/);

      const serial = `mayu-hw-${row.name}`;
      const host = decodeHost(JSON.parse(git(mayu!.clusterDir, 'show', `HEAD:${serial}/conf.json`)));
      assert.equal(host.State, 'installed');
      const nicIndex = (row.deadNics ?? []).length;
      assert.equal(host.ConnectedNIC, `eth${nicIndex}`, 'the NIC that reached mayu');
      assert.equal(host.MacAddresses?.length, nicIndex + 1, 'every NIC reported');
      assert.equal(gitSubjects(mayu!.clusterDir).filter((s) => s.startsWith(`${serial}: `)).at(-1), `${serial}: updated state to installed`);
    });
  }
});

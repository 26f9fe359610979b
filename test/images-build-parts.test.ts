import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { CpioError, writeCpio } from '../scripts/images/cpio.ts';
import { osDiskLayout, testOsDiskLayout } from '../scripts/images/disk-layout.ts';
import { ROOT } from './helpers/mayu-process.ts';
import { initramfsEntries } from '../scripts/images/initramfs.ts';
import { loadOrder, moduleAliases, ModuleError, moduleDepends, moduleFirmware, modulesAliasFile, modulesAliasIndex, modulesDepFile } from '../scripts/images/kernel-modules.ts';
import { MbrError, mbrSector } from '../scripts/images/mbr.ts';

// The pure parts of `npm run build:images`: newc cpio writer, MBR, module load order, layout.

/** `cpio -itv` (GNU cpio) of an archive: what a real cpio reads back. */
function gnuCpioList(archive: Buffer): string[] {
  return execFileSync('cpio', ['-itv', '--quiet'], { input: archive, encoding: 'utf8' }).trimEnd().split('\n');
}

describe('newc cpio writer', () => {
  const archive = writeCpio([
    { type: 'file', path: '/init', data: '#!/bin/sh\necho hi\n', mode: 0o755 },
    { type: 'char', path: 'dev/console', major: 5, minor: 1 },
    { type: 'symlink', path: 'bin/sh', target: 'busybox' },
    { type: 'file', path: 'lib/modules/x.ko', data: new Uint8Array([1, 2, 3]) },
  ]);

  it('is read back by GNU cpio with modes, device numbers, link targets and parent dirs', () => {
    const lines = gnuCpioList(archive);
    // mtime 0: every line ends "Jan  1  1970 <name>".
    const byName = new Map(lines.map((l) => [l.replace(/^.*? 1970 /, ''), l]));
    assert.deepEqual([...byName.keys()], ['init', 'dev', 'dev/console', 'bin', 'bin/sh -> busybox', 'lib', 'lib/modules', 'lib/modules/x.ko']);
    assert.match(byName.get('init')!, /^-rwxr-xr-x .* 18 /);
    assert.match(byName.get('dev/console')!, /^crw------- .* 5,\s+1 /);
    assert.match(byName.get('dev')!, /^drwxr-xr-x /);
    assert.match(byName.get('lib/modules/x.ko')!, /^-rw-r--r-- .* 3 /);
  });

  it('pads every header+name and every body to 4 bytes and ends with TRAILER!!!', () => {
    assert.equal(archive.length % 4, 0);
    assert.equal(archive.subarray(0, 6).toString(), '070701');
    const nameSize = parseInt(archive.subarray(94, 102).toString(), 16);
    assert.equal(nameSize, 'init'.length + 1);
    const dataAt = Math.ceil((110 + nameSize) / 4) * 4;
    assert.equal(archive.subarray(dataAt, dataAt + 9).toString(), '#!/bin/sh');
    const trailer = archive.lastIndexOf('TRAILER!!!');
    assert.ok(trailer > 0);
    assert.equal(archive.subarray(trailer - 110, trailer - 104).toString(), '070701');
  });

  it('is deterministic and refuses duplicate or escaping paths', () => {
    const again = writeCpio([{ type: 'file', path: 'a', data: 'x' }]);
    assert.deepEqual(again, writeCpio([{ type: 'file', path: 'a', data: 'x' }]));
    assert.throws(() => writeCpio([{ type: 'file', path: 'a', data: '' }, { type: 'dir', path: '/a/' }]), CpioError);
    assert.throws(() => writeCpio([{ type: 'file', path: '../etc/passwd', data: '' }]), CpioError);
  });
});

describe('initramfs entries', () => {
  it('busybox with one link per applet, device nodes, modules with the loader\'s tables', () => {
    const entries = initramfsEntries({
      busybox: new Uint8Array([0x7f]),
      applets: ['sh', 'busybox', 'ls', 'sh'],
      modules: [{ name: 'virtio', data: new Uint8Array() }, { name: 'virtio_net', data: new Uint8Array() }],
      moduleTables: { alias: 'alias virtio:d00000001v* virtio_net\n', dep: 'virtio:\nvirtio_net: virtio\n', filesystems: ['virtio'] },
      files: [{ type: 'file', path: 'init', data: '' }],
    });
    const paths = entries.map((e) => e.path);
    assert.ok(paths.includes('dev/console') && paths.includes('dev/null'));
    assert.deepEqual(entries.filter((e) => e.type === 'symlink' && e.path.startsWith('bin/')).map((e) => e.path), ['bin/ls', 'bin/sh']);
    const file = (p: string) => entries.find((e) => e.path === p);
    assert.ok(file('lib/modules/virtio_net.ko'));
    assert.deepEqual(file('lib/modules/modules.dep'), { type: 'file', path: 'lib/modules/modules.dep', data: 'virtio:\nvirtio_net: virtio\n' });
    assert.deepEqual(file('lib/modules/filesystems'), { type: 'file', path: 'lib/modules/filesystems', data: 'virtio\n' });
    assert.equal(paths.at(-1), 'init');
    const listed = gnuCpioList(writeCpio(entries)).join('\n');
    assert.match(listed, /crw-rw-rw- .* 1,\s+3 .* dev\/null/);
  });
});

describe('kernel module load order', () => {
  const ko = (depends: string) => Buffer.from(`\0license=GPL\0depends=${depends}\0name=x\0`, 'latin1');

  it('reads depends= from the module bytes', () => {
    assert.deepEqual(moduleDepends(ko('virtio,virtio_ring')), ['virtio', 'virtio_ring']);
    assert.deepEqual(moduleDepends(ko('')), []);
    assert.throws(() => moduleDepends(Buffer.from('not a module')), ModuleError);
  });

  it('puts every dependency first, once, and names what is missing or cyclic', () => {
    const deps: Record<string, string[]> = {
      virtio_net: ['net_failover', 'virtio', 'virtio_ring'],
      net_failover: ['failover'],
      failover: [],
      virtio: [],
      virtio_ring: [],
      virtio_pci: ['virtio_pci_modern_dev', 'virtio', 'virtio_ring'],
      virtio_pci_modern_dev: [],
    };
    assert.deepEqual(loadOrder(['virtio_pci', 'virtio-net'], (n) => deps[n]), [
      'virtio_pci_modern_dev', 'virtio', 'virtio_ring', 'virtio_pci', 'failover', 'net_failover', 'virtio_net',
    ]);
    assert.throws(() => loadOrder(['virtio_net'], (n) => (n === 'failover' ? undefined : deps[n])), /no module file for failover \(needed by net_failover\)/);
    assert.throws(() => loadOrder(['a'], (n) => (n === 'a' ? ['b'] : ['a'])), /cycle: a -> b -> a/);
  });
});

describe('MBR and the test OS disk layout', () => {
  it('writes boot code, signature, LBA fields, the boot flag and 0x55AA', () => {
    const layout = testOsDiskLayout(15 * 1024 * 1024 + 1, 1024 * 1024);
    assert.deepEqual(layout.boot, { start: 2048, sectors: 16 * 2048, type: 0xef, bootable: true });
    assert.deepEqual(layout.config, { start: 2048 + 16 * 2048, sectors: 2048, type: 0xda });
    assert.equal(layout.totalSectors, 2048 + 17 * 2048);

    const sector = mbrSector(Buffer.alloc(440, 0xab), [layout.boot, layout.config], 0x12345678);
    assert.equal(sector.length, 512);
    assert.equal(sector[439], 0xab);
    assert.equal(sector.readUInt32LE(440), 0x12345678);
    assert.equal(sector[446], 0x80);
    assert.equal(sector[446 + 4], 0xef);
    assert.equal(sector.readUInt32LE(446 + 8), 2048);
    assert.equal(sector.readUInt32LE(446 + 12), 16 * 2048);
    assert.equal(sector[462], 0x00);
    assert.equal(sector[462 + 4], 0xda);
    assert.equal(sector.readUInt32LE(462 + 8), 2048 + 16 * 2048);
    assert.deepEqual([sector[510], sector[511]], [0x55, 0xaa]);
  });

  it('refuses overlapping partitions and oversized boot code', () => {
    assert.throws(() => mbrSector(Buffer.alloc(0), [{ start: 2048, sectors: 100, type: 1 }, { start: 2100, sectors: 10, type: 1 }], 1), MbrError);
    assert.throws(() => mbrSector(Buffer.alloc(446), [], 1), MbrError);
  });
});

describe('coldplug tables', () => {
  const ko = (strings: string[]) => Buffer.from(`\0${strings.join('\0')}\0`, 'latin1');
  const e1000e = ko(['alias=pci:v00008086d000010D3sv*sd*bc*sc*i*', 'alias=pci:v00008086d0000153Asv*sd*bc*sc*i*', 'firmware=e1000e/x.bin', 'depends=', 'name=e1000e']);

  it('reads alias= and firmware= strings from the module bytes', () => {
    assert.deepEqual(moduleAliases(e1000e), ['pci:v00008086d000010D3sv*sd*bc*sc*i*', 'pci:v00008086d0000153Asv*sd*bc*sc*i*']);
    assert.deepEqual(moduleFirmware(e1000e), ['e1000e/x.bin']);
    assert.deepEqual(moduleAliases(ko(['depends=a'])), []);
  });

  it('modules.alias: device aliases only, in the kernel\'s format, sorted and without repeats', () => {
    const file = modulesAliasFile([
      { name: 'e1000e', aliases: moduleAliases(e1000e) },
      { name: 'crc32c_generic', aliases: ['crypto-crc32c', 'crc32c'] },
      { name: 'sd_mod', aliases: ['scsi:t-0x00*', 'scsi:t-0x00*', 'block-major-8-*'] },
    ]);
    assert.equal(file, [
      'alias pci:v00008086d000010D3sv*sd*bc*sc*i* e1000e',
      'alias pci:v00008086d0000153Asv*sd*bc*sc*i* e1000e',
      'alias scsi:t-0x00* sd_mod',
      '',
    ].join('\n'));
  });

  // A slice of the installer's real table: exact PCI IDs, a vendor with any device, class matches
  // for any vendor (ahci, nvme), other buses.
  const aliasFile = modulesAliasFile([
    { name: 'e1000e', aliases: moduleAliases(e1000e) },
    { name: 'ahci', aliases: ['pci:v*d*sv*sd*bc01sc06i01*', 'pci:v00008086d00002922sv*sd*bc*sc*i*'] },
    { name: 'nvme', aliases: ['pci:v*d*sv*sd*bc01sc08i02*'] },
    { name: 'megaraid_sas', aliases: ['pci:v00001000d00000060sv*sd*bc*sc*i*'] },
    { name: 'mpt3sas', aliases: ['pci:v00001000d*sv*sd*bc01sc07i*'] },
    { name: '8139too', aliases: ['pci:v*d00008139sv000010ECsd00008139bc*sc*i*', 'pci:v000010ECd00008139sv*sd*bc*sc*i*'] },
    { name: 'virtio_net', aliases: ['virtio:d00000001v*'] },
    { name: 'sd_mod', aliases: ['scsi:t-0x00*', 'scsi:t-0x0e*'] },
  ]);

  it('modules.alias.keyed: each alias under the literal start of the modaliases it can match', () => {
    assert.equal(modulesAliasIndex(aliasFile), [
      'any:pci pci:v*d*sv*sd*bc01sc06i01* ahci',
      'any:pci pci:v*d*sv*sd*bc01sc08i02* nvme',
      'any:pci pci:v*d00008139sv000010ECsd00008139bc*sc*i* 8139too',
      'any:scsi scsi:t-0x00* sd_mod',
      'any:scsi scsi:t-0x0e* sd_mod',
      'any:virtio virtio:d00000001v* virtio_net',
      'pci:v00001000 pci:v00001000d*sv*sd*bc01sc07i* mpt3sas',
      'pci:v00001000d00000060 pci:v00001000d00000060sv*sd*bc*sc*i* megaraid_sas',
      'pci:v000010ECd00008139 pci:v000010ECd00008139sv*sd*bc*sc*i* 8139too',
      'pci:v00008086d000010D3 pci:v00008086d000010D3sv*sd*bc*sc*i* e1000e',
      'pci:v00008086d0000153A pci:v00008086d0000153Asv*sd*bc*sc*i* e1000e',
      'pci:v00008086d00002922 pci:v00008086d00002922sv*sd*bc*sc*i* ahci',
      '',
    ].join('\n'));
  });

  it("mayu-coldplug --match (real busybox sh and awk) finds each device's modules through the keyed table", () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'mayu-coldplug-'));
    try {
      writeFileSync(path.join(dir, 'modules.alias.keyed'), modulesAliasIndex(aliasFile));
      const match = (modaliases: string[]) => {
        const r = spawnSync('/usr/bin/busybox', ['sh', path.join(ROOT, 'scripts/images/initramfs/mayu-coldplug'), '--match'], {
          input: modaliases.map((m) => `${m}\n`).join(''), encoding: 'utf8', env: { PATH: '/usr/bin:/bin', MAYU_MODDIR: dir },
        });
        assert.equal(r.status, 0, r.stderr);
        return r.stdout.split('\n').filter(Boolean);
      };
      const table: [string, string[]][] = [
        ['pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00', ['e1000e']],
        ['pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01', ['ahci']], // its own ID and the class: once
        ['pci:v00001B36d00000010sv00001AF4sd00001100bc01sc08i02', ['nvme']],
        ['pci:v00001000d00000060sv00001000sd00001000bc01sc04i00', ['megaraid_sas']],
        ['pci:v00001000d00000097sv00001000sd00003090bc01sc07i00', ['mpt3sas']],
        ['pci:v00001000d00000097sv00001000sd00003090bc01sc04i00', []], // vendor matches, class does not
        ['pci:v000010ECd00008139sv00001AF4sd00001100bc02sc00i00', ['8139too']],
        ['pci:v00001186d00008139sv000010ECsd00008139bc02sc00i00', ['8139too']], // any vendor, fixed subsystem
        ['pci:v00008086d00001237sv00001AF4sd00001100bc06sc00i00', []],
        ['virtio:d00000001v00001AF4', ['virtio_net']],
        ['virtio:d00000002v00001AF4', []],
        ['scsi:t-0x00', ['sd_mod']],
        ['scsi:t-0x05', []],
        ['cpu:type:x86,ven0000fam0006mod003F:feature:,0000,0001', []],
      ];
      for (const [modalias, modules] of table) assert.deepEqual(match([modalias]), modules, modalias);
      // All at once: each module named once.
      assert.deepEqual(match(table.map(([m]) => m)).sort(), ['8139too', 'ahci', 'e1000e', 'megaraid_sas', 'mpt3sas', 'nvme', 'sd_mod', 'virtio_net']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('modules.dep: each module with its whole closure in load order', () => {
    const deps: Record<string, string[]> = { ahci: ['libahci', 'libata'], libahci: ['libata'], libata: ['scsi_mod'], scsi_mod: ['scsi_common'], scsi_common: [] };
    assert.equal(modulesDepFile(['scsi_common', 'ahci'], (n) => deps[n]), 'ahci: scsi_common scsi_mod libata libahci\nscsi_common:\n');
    assert.throws(() => modulesDepFile(['nope'], (n) => deps[n]), ModuleError);
  });
});

describe('Debian OS image parts', () => {
  it("the image's cloud-init config passes cloud-init's own schema check", () => {
    const r = spawnSync('/usr/bin/cloud-init', ['schema', '--config-file', path.join(ROOT, 'scripts/images/debian/90_mayu.cfg')], { encoding: 'utf8' });
    assert.equal(r.error, undefined, String(r.error));
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  });

  it('layout: ESP first (0xef, active), ext4 root last (0x83) so growpart can grow it, 1 MiB aligned', () => {
    const layout = osDiskLayout(33 * 1024 * 1024 + 1, 500 * 1024 * 1024);
    assert.deepEqual(layout.boot, { start: 2048, sectors: 34 * 2048, type: 0xef, bootable: true });
    assert.deepEqual(layout.root, { start: 2048 + 34 * 2048, sectors: 500 * 2048, type: 0x83 });
    assert.equal(layout.totalSectors, layout.root.start + layout.root.sectors);
  });
});

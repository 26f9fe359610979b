// Builds the netboot images from Debian packages, without root:
//   <imagesDir>/vmlinuz, initrd.cpio.gz            the installer mayu serves to iPXE
//   <imagesDir>/<version>/install_image.bin.bz2    a tiny installable OS for the tests
//   <imagesDir>/build-info.json                    inputs, fingerprint and sizes
// Downloads and extracted packages are cached under <cacheDir>. A build whose inputs (package
// versions, the files in scripts/images/, the version) match build-info.json is skipped.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { writeCpio, type CpioEntry } from './cpio.ts';
import { fetchPackage, resolveDependency, type DebianPackage } from './debian.ts';
import { testOsDiskLayout } from './disk-layout.ts';
import { initramfsEntries, type KernelModule } from './initramfs.ts';
import { loadOrder, moduleDepends, moduleName } from './kernel-modules.ts';
import { mbrSector, SECTOR } from './mbr.ts';

const HERE = import.meta.dirname;
const SHELL_DIR = path.join(HERE, 'initramfs');

/** NIC and disk drivers for QEMU's virtio devices; their dependencies are added. */
export const MODULES = ['virtio_pci', 'virtio_net', 'virtio_blk'] as const;
/** The cloud kernel: small, LZ4 (boots seconds faster under TCG than the generic XZ one). */
const KERNEL_META = 'linux-image-cloud-amd64';
/** Config partition of the test OS: room for the installer's tar of config + mayu-env. */
const CONFIG_PARTITION_BYTES = 1024 * 1024;

export interface BuildOptions {
  /** OS image version: the folder under imagesDir (a profile's coreos_version or default_coreos_version). */
  version: string;
  imagesDir: string;
  cacheDir: string;
  force?: boolean;
  log?: (line: string) => void;
}

export interface BuildInfo {
  fingerprint: string;
  version: string;
  packages: Record<string, string>;
  /** Path (relative to imagesDir) → bytes. */
  sizes: Record<string, number>;
  /** Sizes before compression, for the record. */
  uncompressed: Record<string, number>;
}

const run = (cmd: string, args: string[], opts: { cwd?: string } = {}) =>
  execFileSync(cmd, args, { cwd: opts.cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else out.push(p);
  }
  return out.sort();
}

async function fingerprint(version: string, packages: DebianPackage[]): Promise<string> {
  const h = createHash('sha256');
  h.update(`version ${version}\n`);
  for (const p of packages) h.update(`package ${p.name} ${p.version}\n`);
  for (const f of await filesUnder(HERE)) h.update(`${path.relative(HERE, f)}\n`).update(await readFile(f));
  return h.digest('hex');
}

async function kernelModules(kernelRoot: string, wanted: readonly string[]): Promise<KernelModule[]> {
  const files = new Map<string, string>();
  for (const f of await filesUnder(path.join(kernelRoot, 'lib/modules'))) {
    if (f.endsWith('.ko')) files.set(moduleName(path.basename(f)), f);
  }
  const bytes = new Map<string, Buffer>();
  const read = async (name: string) => {
    const f = files.get(name);
    if (f && !bytes.has(name)) bytes.set(name, await readFile(f));
  };
  // Read the whole dependency closure first: loadOrder itself is synchronous and pure.
  const queue = [...wanted];
  while (queue.length) {
    const name = moduleName(queue.shift()!);
    if (bytes.has(name)) continue;
    await read(name);
    const b = bytes.get(name);
    if (b) queue.push(...moduleDepends(b));
  }
  const order = loadOrder(wanted, (name) => {
    const b = bytes.get(name);
    return b ? moduleDepends(b) : undefined;
  });
  return order.map((name) => ({ name, data: bytes.get(name)! }));
}

async function shellFile(name: string): Promise<Buffer> {
  return readFile(path.join(SHELL_DIR, name));
}

/** gzip'd newc initramfs of busybox + modules + the given files. */
function initramfs(busybox: Buffer, applets: string[], modules: KernelModule[], files: CpioEntry[]): { gz: Buffer; raw: number } {
  const cpio = writeCpio(initramfsEntries({ busybox, applets, modules, files }));
  return { gz: gzipSync(cpio, { level: 9 }), raw: cpio.length };
}

export async function buildImages(opts: BuildOptions): Promise<{ info: BuildInfo; skipped: boolean }> {
  const log = opts.log ?? (() => {});
  if (!/^[A-Za-z0-9._+-]+$/.test(opts.version) || opts.version.startsWith('.')) throw new Error(`invalid image version ${JSON.stringify(opts.version)}`);
  const kernelPkg = resolveDependency(KERNEL_META, 'linux-image-');
  const packages: DebianPackage[] = [];
  for (const name of [kernelPkg, 'busybox-static', 'syslinux', 'syslinux-common']) packages.push(await fetchPackage(name, opts.cacheDir));
  const [kernel, busyboxPkg, syslinux, syslinuxCommon] = packages as [DebianPackage, DebianPackage, DebianPackage, DebianPackage];
  const print = await fingerprint(opts.version, packages);
  const infoFile = path.join(opts.imagesDir, 'build-info.json');
  const imageRel = path.join(opts.version, 'install_image.bin.bz2');
  const outputs = ['vmlinuz', 'initrd.cpio.gz', imageRel];

  if (!opts.force && existsSync(infoFile) && outputs.every((f) => existsSync(path.join(opts.imagesDir, f)))) {
    const old = JSON.parse(await readFile(infoFile, 'utf8')) as BuildInfo;
    if (old.fingerprint === print) return { info: old, skipped: true };
  }

  await mkdir(opts.cacheDir, { recursive: true });
  const work = await mkdtemp(path.join(opts.cacheDir, 'build-'));
  try {
    const vmlinuz = (await readdir(path.join(kernel.root, 'boot'))).find((f) => f.startsWith('vmlinuz-'));
    if (!vmlinuz) throw new Error(`${kernel.name} has no boot/vmlinuz-*`);
    const kernelFile = path.join(kernel.root, 'boot', vmlinuz);
    const busyboxFile = path.join(busyboxPkg.root, 'bin/busybox');
    const busybox = await readFile(busyboxFile);
    const applets = run(busyboxFile, ['--list']).split('\n').filter(Boolean);
    const modules = await kernelModules(kernel.root, MODULES);
    log(`kernel ${kernel.name} ${kernel.version}, busybox ${busyboxPkg.version}, modules: ${modules.map((m) => m.name).join(' ')}`);

    const common: CpioEntry[] = [
      { type: 'file', path: 'lib/mayu/common.sh', data: await shellFile('common.sh') },
      { type: 'file', path: 'etc/udhcpc.script', data: await shellFile('udhcpc.script'), mode: 0o755 },
    ];
    const installer = initramfs(busybox, applets, modules, [
      { type: 'file', path: 'init', data: await shellFile('installer-init'), mode: 0o755 },
      ...common,
    ]);
    const testOs = initramfs(busybox, applets, modules, [
      { type: 'file', path: 'init', data: await shellFile('test-os-init'), mode: 0o755 },
      { type: 'file', path: 'etc/os-release', data: `NAME="mayu test OS"\nID=mayu-test-os\nVERSION_ID=${opts.version}\nPRETTY_NAME="mayu test OS ${opts.version}"\n` },
      ...common,
    ]);

    // The test OS disk: FAT boot partition made with mkfs.vfat + mcopy, syslinux installed by its
    // mtools-based installer (works on an image file: no mount, no root).
    const syslinuxCfg = [
      'SERIAL 0 115200',
      'PROMPT 0',
      'TIMEOUT 0',
      'DEFAULT mayu-test-os',
      'LABEL mayu-test-os',
      '  LINUX /vmlinuz',
      '  INITRD /initrd.gz',
      '  APPEND console=ttyS0,115200n8 panic=1 quiet',
      '',
    ].join('\n');
    await writeFile(path.join(work, 'initrd.gz'), testOs.gz);
    await writeFile(path.join(work, 'syslinux.cfg'), syslinuxCfg);
    await copyFile(kernelFile, path.join(work, 'vmlinuz'));
    const kernelBytes = (await stat(kernelFile)).size;
    // FAT16 overhead (FATs, root dir, cluster slack) plus ldlinux.sys/.c32 (~140 KB): 1 MiB of room.
    const layout = testOsDiskLayout(kernelBytes + testOs.gz.length + 1024 * 1024, CONFIG_PARTITION_BYTES);
    const bootImg = path.join(work, 'boot.img');
    run('mkfs.vfat', ['-C', '-F', '16', '-n', 'MAYUBOOT', '-i', '6d617975', '-h', String(layout.boot.start), bootImg, String((layout.boot.sectors * SECTOR) / 1024)]);
    run('mcopy', ['-i', bootImg, path.join(work, 'vmlinuz'), path.join(work, 'initrd.gz'), path.join(work, 'syslinux.cfg'), '::/']);
    run(path.join(syslinux.root, 'usr/bin/syslinux'), ['--install', bootImg]);

    const mbrCode = await readFile(path.join(syslinuxCommon.root, 'usr/lib/syslinux/mbr/mbr.bin'));
    const disk = Buffer.alloc(layout.totalSectors * SECTOR);
    mbrSector(mbrCode, [layout.boot, layout.config], 0x6d617975).copy(disk, 0);
    (await readFile(bootImg)).copy(disk, layout.boot.start * SECTOR);
    const diskFile = path.join(work, 'install_image.bin');
    await writeFile(diskFile, disk);
    run('bzip2', ['-9', '-k', diskFile]);

    // Publish: each file renamed into place, build-info.json last.
    await mkdir(path.join(opts.imagesDir, opts.version), { recursive: true });
    const publish = async (from: string, rel: string) => {
      const to = path.join(opts.imagesDir, rel);
      await copyFile(from, `${to}.tmp`);
      await rename(`${to}.tmp`, to);
    };
    await writeFile(path.join(work, 'initrd.cpio.gz'), installer.gz);
    await publish(kernelFile, 'vmlinuz');
    await publish(path.join(work, 'initrd.cpio.gz'), 'initrd.cpio.gz');
    await publish(`${diskFile}.bz2`, imageRel);
    const sizes: Record<string, number> = {};
    for (const rel of outputs) sizes[rel] = (await stat(path.join(opts.imagesDir, rel))).size;
    const info: BuildInfo = {
      fingerprint: print,
      version: opts.version,
      packages: Object.fromEntries(packages.map((p) => [p.name, p.version])),
      sizes,
      uncompressed: { 'initrd.cpio': installer.raw, 'test-os initrd.cpio': testOs.raw, 'install_image.bin': disk.length },
    };
    await writeFile(`${infoFile}.tmp`, `${JSON.stringify(info, null, 2)}\n`);
    await rename(`${infoFile}.tmp`, infoFile);
    return { info, skipped: false };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

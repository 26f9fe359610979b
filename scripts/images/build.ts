// Builds the netboot images from Debian packages, without root:
//   <imagesDir>/vmlinuz, initrd.cpio.gz            the installer mayu serves to iPXE
//   <imagesDir>/<version>/install_image.bin.bz2    a tiny installable OS for the tests (0.11's name)
//   <imagesDir>/<version>/install_image.bin.zst    the same, what the installer fetches
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
import { candidateVersions, fetchPackage, resolveDependency, type DebianPackage } from './debian.ts';
import { testOsDiskLayout } from './disk-layout.ts';
import { initramfsEntries, type KernelModule } from './initramfs.ts';
import { driverModules, TEST_OS_DRIVERS } from './drivers.ts';
import { loadOrder, moduleAliases, moduleDepends, moduleFirmware, moduleName, modulesAliasFile, modulesDepFile } from './kernel-modules.ts';
import { mbrSector, SECTOR } from './mbr.ts';
import { BOOT_PARTITION_OVERHEAD, buildBootPartition, syslinuxConfig, syslinuxMbrCode } from './boot-partition.ts';

const HERE = import.meta.dirname;
const SHELL_DIR = path.join(HERE, 'initramfs');

/**
 * Debian's generic kernel: it has the NIC and disk drivers of physical servers as modules (the
 * cloud kernel has none of them). XZ-compressed, so it boots a few seconds slower under TCG.
 */
const KERNEL_META = 'linux-image-amd64';
/**
 * The test OS's kernel: Debian's cloud kernel, LZ4-compressed. The test OS stands in for the
 * user's OS on the VM shapes that boot to `running` (virtio, vmxnet3, NVMe): under TCG the
 * generic kernel's XZ took ~3 s of every disk boot to decompress, the cloud kernel's LZ4 ~0.3 s.
 */
const TEST_OS_KERNEL_META = 'linux-image-cloud-amd64';
/** Config partition of the test OS: room for the installer's tar of config + mayu-env. */
const CONFIG_PARTITION_BYTES = 1024 * 1024;

export interface BuildOptions {
  /** OS image version: the folder under imagesDir (a profile's coreos_version or default_coreos_version). */
  version: string;
  imagesDir: string;
  cacheDir: string;
  force?: boolean;
  /**
   * Debian firmware packages (e.g. firmware-bnx2x, firmware-realtek, from the non-free-firmware
   * component the operator enabled in apt's sources): the files the carried drivers name
   * (modinfo firmware=) are copied from them into the installer's /lib/firmware.
   */
  firmwarePackages?: readonly string[];
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
  // The Debian OS image's own files (debian-os.ts, debian/) are not inputs of these images.
  const own = (rel: string) => rel !== 'debian-os.ts' && !rel.startsWith('debian/');
  for (const f of await filesUnder(HERE)) if (own(path.relative(HERE, f))) h.update(`${path.relative(HERE, f)}\n`).update(await readFile(f));
  return h.digest('hex');
}

interface ModuleSet {
  /** Every module the initramfs carries: the drivers and their dependency closure. */
  modules: KernelModule[];
  tables: { alias: string; dep: string; filesystems: string[] };
  /** Module → the firmware files it names (modinfo firmware=). */
  firmware: Map<string, string[]>;
}

async function kernelModules(kernelRoot: string, drivers: readonly string[], filesystems: readonly string[]): Promise<ModuleSet> {
  const files = new Map<string, string>();
  for (const f of await filesUnder(path.join(kernelRoot, 'lib/modules'))) {
    if (f.endsWith('.ko')) files.set(moduleName(path.basename(f)), f);
  }
  const bytes = new Map<string, Buffer>();
  // Read the whole dependency closure first: loadOrder itself is synchronous and pure.
  const queue = [...drivers, ...filesystems].map(moduleName);
  while (queue.length) {
    const name = queue.shift()!;
    if (bytes.has(name)) continue;
    const f = files.get(name);
    if (!f) throw new Error(`the kernel package has no module ${name}`);
    const b = await readFile(f);
    bytes.set(name, b);
    queue.push(...moduleDepends(b).map(moduleName));
  }
  const dependsOf = (name: string) => {
    const b = bytes.get(name);
    return b ? moduleDepends(b).map(moduleName) : undefined;
  };
  const order = loadOrder([...drivers, ...filesystems], dependsOf);
  const modules = order.map((name) => ({ name, data: bytes.get(name)! }));
  return {
    modules,
    tables: {
      // Only the drivers answer to devices: a dependency (libata, scsi_mod, ...) loads with them.
      alias: modulesAliasFile(drivers.map(moduleName).map((name) => ({ name, aliases: moduleAliases(bytes.get(name)!) }))),
      dep: modulesDepFile(order, dependsOf),
      filesystems: filesystems.map(moduleName),
    },
    firmware: new Map(modules.map((m) => [m.name, moduleFirmware(m.data)] as const).filter(([, fw]) => fw.length > 0)),
  };
}

/** One line per driver group and the largest modules: what the drivers cost the initramfs. */
function moduleReport(set: ModuleSet): string[] {
  const gz = (b: Uint8Array) => gzipSync(b, { level: 9 }).length;
  const mb = (n: number) => `${(n / 1e6).toFixed(2)} MB`;
  const sized = set.modules.map((m) => ({ name: m.name, raw: m.data.length, gz: gz(m.data) }));
  const raw = sized.reduce((n, m) => n + m.raw, 0);
  const packed = sized.reduce((n, m) => n + m.gz, 0);
  const lines = [`modules: ${sized.length} (${mb(raw)} raw, ${mb(packed)} gzipped)`];
  for (const kind of ['nic', 'disk', 'filesystem'] as const) lines.push(`  ${kind.padEnd(10)} ${driverModules(kind).join(' ')}`);
  const drivers = new Set([...driverModules('nic'), ...driverModules('disk'), ...driverModules('filesystem')].map(moduleName));
  lines.push(`  deps       ${sized.filter((m) => !drivers.has(m.name)).map((m) => m.name).join(' ')}`);
  lines.push(`  largest    ${[...sized].sort((a, b) => b.gz - a.gz).slice(0, 8).map((m) => `${m.name} ${mb(m.gz)}`).join(', ')}`);
  return lines;
}

/** The firmware files the carried modules name, from the given firmware packages, as initramfs entries. */
async function firmwareEntries(set: ModuleSet, packages: readonly DebianPackage[]): Promise<{ type: 'file'; path: string; data: Buffer }[]> {
  const wanted = new Set([...set.firmware.values()].flat());
  const entries: { type: 'file'; path: string; data: Buffer }[] = [];
  for (const p of packages) {
    const dir = path.join(p.root, 'lib/firmware');
    if (!existsSync(dir)) throw new Error(`firmware package ${p.name} has no lib/firmware`);
    for (const f of await filesUnder(dir)) {
      const rel = path.relative(dir, f);
      if (wanted.has(rel)) entries.push({ type: 'file', path: `lib/firmware/${rel}`, data: await readFile(f) });
    }
  }
  return entries;
}

/**
 * Debian's zstd and the shared libraries it links (busybox decompresses bzip2 and gzip, not
 * zstd): the installer writes zstd-compressed OS images, which decompress several times faster.
 */
const ZSTD_PACKAGES = ['zstd', 'libzstd1', 'liblzma5', 'liblz4-1', 'zlib1g', 'libc6'];

async function zstdEntries(packages: readonly DebianPackage[]): Promise<CpioEntry[]> {
  const find = (name: string) => {
    for (const p of packages) {
      for (const dir of ['lib/x86_64-linux-gnu', 'usr/lib/x86_64-linux-gnu', 'usr/bin']) {
        if (existsSync(path.join(p.root, dir, name))) return path.join(p.root, dir, name);
      }
    }
    throw new Error(`no ${name} in ${packages.map((p) => p.name).join(', ')}`);
  };
  const entries: CpioEntry[] = [{ type: 'file', path: 'bin/zstd', data: await readFile(find('zstd')), mode: 0o755 }];
  for (const lib of ['libzstd.so.1', 'liblzma.so.5', 'liblz4.so.1', 'libz.so.1', 'libc.so.6']) {
    entries.push({ type: 'file', path: `lib/x86_64-linux-gnu/${lib}`, data: await readFile(find(lib)), mode: 0o755 });
  }
  // The program interpreter every dynamic binary names (PT_INTERP).
  entries.push({ type: 'file', path: 'lib64/ld-linux-x86-64.so.2', data: await readFile(find('ld-linux-x86-64.so.2')), mode: 0o755 });
  return entries;
}

async function vmlinuzOf(kernel: DebianPackage): Promise<string> {
  const vmlinuz = (await readdir(path.join(kernel.root, 'boot'))).find((f) => f.startsWith('vmlinuz-'));
  if (!vmlinuz) throw new Error(`${kernel.name} has no boot/vmlinuz-*`);
  return path.join(kernel.root, 'boot', vmlinuz);
}

async function shellFile(name: string): Promise<Buffer> {
  return readFile(path.join(SHELL_DIR, name));
}

/** gzip'd newc initramfs of busybox + modules + the given files. */
function initramfs(busybox: Buffer, applets: string[], set: ModuleSet, files: CpioEntry[]): { gz: Buffer; raw: number } {
  const cpio = writeCpio(initramfsEntries({ busybox, applets, modules: set.modules, moduleTables: set.tables, files }));
  return { gz: gzipSync(cpio, { level: 9 }), raw: cpio.length };
}

export async function buildImages(opts: BuildOptions): Promise<{ info: BuildInfo; skipped: boolean }> {
  const log = opts.log ?? (() => {});
  if (!/^[A-Za-z0-9._+-]+$/.test(opts.version) || opts.version.startsWith('.')) throw new Error(`invalid image version ${JSON.stringify(opts.version)}`);
  const kernelPkg = resolveDependency(KERNEL_META, 'linux-image-');
  const testOsKernelPkg = resolveDependency(TEST_OS_KERNEL_META, 'linux-image-');
  const packages: DebianPackage[] = [];
  const firmwareNames = [...new Set(opts.firmwarePackages ?? [])].sort();
  const names = [kernelPkg, testOsKernelPkg, 'busybox-static', 'syslinux', 'syslinux-common', 'syslinux-efi', ...ZSTD_PACKAGES, ...firmwareNames];
  const versions = candidateVersions(names);
  for (const name of names) packages.push(await fetchPackage(name, opts.cacheDir, versions[name]));
  const [kernel, testOsKernel, busyboxPkg, syslinux, syslinuxCommon, syslinuxEfi] = packages as [DebianPackage, DebianPackage, DebianPackage, DebianPackage, DebianPackage, DebianPackage];
  const zstdPackages = packages.slice(6, 6 + ZSTD_PACKAGES.length);
  const firmwarePackages = packages.slice(6 + ZSTD_PACKAGES.length);
  const print = await fingerprint(opts.version, packages);
  const infoFile = path.join(opts.imagesDir, 'build-info.json');
  const imageRel = path.join(opts.version, 'install_image.bin.bz2');
  const zstdImageRel = path.join(opts.version, 'install_image.bin.zst');
  const outputs = ['vmlinuz', 'initrd.cpio.gz', imageRel, zstdImageRel];

  if (!opts.force && existsSync(infoFile) && outputs.every((f) => existsSync(path.join(opts.imagesDir, f)))) {
    const old = JSON.parse(await readFile(infoFile, 'utf8')) as BuildInfo;
    if (old.fingerprint === print) return { info: old, skipped: true };
  }

  await mkdir(opts.cacheDir, { recursive: true });
  const work = await mkdtemp(path.join(opts.cacheDir, 'build-'));
  try {
    const kernelFile = await vmlinuzOf(kernel);
    const testOsKernelFile = await vmlinuzOf(testOsKernel);
    const busyboxFile = path.join(busyboxPkg.root, 'bin/busybox');
    const busybox = await readFile(busyboxFile);
    const applets = run(busyboxFile, ['--list']).split('\n').filter(Boolean);
    const modules = await kernelModules(kernel.root, [...driverModules('nic'), ...driverModules('disk')], driverModules('filesystem'));
    // The test OS reads its config archive raw (no file system) and boots only the tests' VM
    // shapes: a smaller initramfs that syslinux reads and the kernel unpacks faster.
    const testOsModules = await kernelModules(testOsKernel.root, TEST_OS_DRIVERS, []);
    log(`kernel ${kernel.name} ${kernel.version}, test OS kernel ${testOsKernel.name}, busybox ${busyboxPkg.version}`);
    for (const line of moduleReport(modules)) log(line);
    log(`test OS modules: ${testOsModules.modules.length} (${(testOsModules.modules.reduce((n, m) => n + m.data.length, 0) / 1e6).toFixed(2)} MB raw): ${TEST_OS_DRIVERS.join(' ')}`);
    const firmware = await firmwareEntries(modules, firmwarePackages);
    if (firmwarePackages.length) log(`firmware: ${firmware.length} files (${(firmware.reduce((n, f) => n + f.data.length, 0) / 1e6).toFixed(2)} MB) from ${firmwarePackages.map((p) => p.name).join(', ')}`);

    const common: CpioEntry[] = [
      { type: 'file', path: 'lib/mayu/common.sh', data: await shellFile('common.sh') },
      { type: 'file', path: 'etc/udhcpc.script', data: await shellFile('udhcpc.script'), mode: 0o755 },
      { type: 'file', path: 'bin/mayu-coldplug', data: await shellFile('mayu-coldplug'), mode: 0o755 },
      { type: 'file', path: 'bin/mayu-modload', data: await shellFile('mayu-modload'), mode: 0o755 },
    ];
    const installer = initramfs(busybox, applets, modules, [
      { type: 'file', path: 'init', data: await shellFile('installer-init'), mode: 0o755 },
      ...common,
      ...(await zstdEntries(zstdPackages)),
      ...firmware,
    ]);
    const testOs = initramfs(busybox, applets, testOsModules, [
      { type: 'file', path: 'init', data: await shellFile('test-os-init'), mode: 0o755 },
      { type: 'file', path: 'etc/os-release', data: `NAME="mayu test OS"\nID=mayu-test-os\nVERSION_ID=${opts.version}\nPRETTY_NAME="mayu test OS ${opts.version}"\n` },
      ...common,
    ]);

    // The test OS disk: the FAT EFI system partition of boot-partition.ts (BIOS and UEFI), then
    // the raw config partition.
    await writeFile(path.join(work, 'initrd.gz'), testOs.gz);
    await copyFile(testOsKernelFile, path.join(work, 'vmlinuz'));
    const kernelBytes = (await stat(testOsKernelFile)).size;
    const layout = testOsDiskLayout(kernelBytes + testOs.gz.length + BOOT_PARTITION_OVERHEAD, CONFIG_PARTITION_BYTES);
    const syslinuxPkgs = { syslinux, syslinuxCommon, syslinuxEfi };
    const bootImg = await buildBootPartition(work, layout.boot, 'MAYUBOOT', [path.join(work, 'vmlinuz'), path.join(work, 'initrd.gz')],
      syslinuxConfig('mayu-test-os', 'initrd.gz', 'console=ttyS0,115200n8 panic=1 quiet'), syslinuxPkgs);

    const mbrCode = await syslinuxMbrCode(syslinuxPkgs);
    const disk = Buffer.alloc(layout.totalSectors * SECTOR);
    mbrSector(mbrCode, [layout.boot, layout.config], 0x6d617975).copy(disk, 0);
    (await readFile(bootImg)).copy(disk, layout.boot.start * SECTOR);
    const diskFile = path.join(work, 'install_image.bin');
    await writeFile(diskFile, disk);
    run('bzip2', ['-9', '-k', diskFile]);
    // What the installer fetches (mayu serves .zst before .bz2): under TCG its zstd writes the
    // image in a fraction of busybox bunzip2's time. The .bz2 stays for 0.11's URL.
    run('zstd', ['-q', '-T2', '-12', '-k', '-f', diskFile, '-o', `${diskFile}.zst`]);

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
    await publish(`${diskFile}.zst`, zstdImageRel);
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

// The Debian 12 OS image: a real OS for mayu to install, configured on first boot by cloud-init
// from the cloud-config mayu rendered (NoCloud seed written by the installer, config_store
// "nocloud"). Built from Debian packages by mmdebstrap (needs root: chroot, file ownership):
//   <imagesDir>/<version>/install_image.bin.zst   MBR disk: 1 = FAT ESP (syslinux, BIOS + UEFI), 2 = ext4 root
//   <imagesDir>/<version>/build-info.json         inputs, fingerprint, sizes, build time
// Skipped (< 5 s) when the fingerprint (package versions, the build's files, the version) matches.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, open, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { BOOT_PARTITION_OVERHEAD, buildBootPartition, syslinuxConfig, syslinuxMbrCode } from './boot-partition.ts';
import { candidateVersions, fetchPackage, resolveDependency, type DebianPackage } from './debian.ts';
import { osDiskLayout } from './disk-layout.ts';
import { mbrSector, SECTOR } from './mbr.ts';

const HERE = import.meta.dirname;
const HOOKS = path.join(HERE, 'debian');

/**
 * What the image holds besides the apt variant's essentials: systemd as init with networkd and
 * resolved, cloud-init with growpart (grows the root partition to the disk), sshd, sudo (the
 * default user's), the generic kernel (the drivers of physical servers) and zstd for its initramfs.
 */
export const DEBIAN_OS_PACKAGES = [
  'systemd-sysv', 'systemd-resolved', 'udev', 'dbus', 'cloud-init', 'cloud-guest-utils', 'e2fsprogs',
  'openssh-server', 'sudo', 'iproute2', 'linux-image-amd64', 'initramfs-tools', 'zstd',
] as const;

/**
 * No docs, man pages, translations, locale sources (cloud-init depends on `locales`; no locale is
 * generated): ~60 MB less, nothing a node reads.
 */
const DPKG_EXCLUDES = ['/usr/share/doc/*', '/usr/share/man/*', '/usr/share/info/*', '/usr/share/locale/*', '/usr/share/lintian/*', '/usr/share/i18n/*'];
const DPKG_INCLUDES = ['/usr/share/doc/*/copyright', '/usr/share/i18n/SUPPORTED'];

/** Kernel command line: root by PARTUUID (MBR signature 6d617975, partition 2); kernel NIC names (net.ifnames=0), as the installer sees them, so the host's ConnectedNIC names the same NIC. */
const KERNEL_APPEND = 'root=PARTUUID=6d617975-02 ro console=tty0 console=ttyS0,115200n8 net.ifnames=0 panic=10';
/** Room in the root filesystem beyond its content (ext4 metadata, first boot's writes) until cloud-init grows it to the disk (growpart + resize2fs). */
const ROOT_SLACK = 0.05;
const ROOT_SLACK_BYTES = 48 * 1024 * 1024;
const ZSTD_LEVEL = 12;

export interface DebianOsOptions {
  version: string;
  imagesDir: string;
  cacheDir: string;
  /** Apt sources for mmdebstrap (a deb822 or one-line file); default: this machine's. */
  sources?: string;
  force?: boolean;
  log?: (line: string) => void;
}

export interface DebianOsInfo {
  fingerprint: string;
  version: string;
  packages: Record<string, string>;
  /** Bytes: raw disk image, compressed file, root filesystem content. */
  sizes: { raw: number; compressed: number; rootContent: number; kernel: number; initrd: number };
  /** Seconds of the cold build, by step. */
  seconds: Record<string, number>;
}

const run = (cmd: string, args: string[], opts: { cwd?: string } = {}) =>
  execFileSync(cmd, args, { cwd: opts.cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 });

function defaultSources(): string {
  for (const f of ['/etc/apt/sources.list.d/debian.sources', '/etc/apt/sources.list']) if (existsSync(f)) return f;
  throw new Error('no apt sources (/etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list): pass --sources');
}

async function fingerprint(version: string, versions: Record<string, string>): Promise<string> {
  const h = createHash('sha256').update(`debian-os ${version}\n`);
  for (const [name, v] of Object.entries(versions)) h.update(`package ${name} ${v}\n`);
  const files = ['debian-os.ts', 'boot-partition.ts', 'disk-layout.ts', 'mbr.ts', ...(await readdir(HOOKS)).sort().map((f) => `debian/${f}`)];
  for (const f of files) h.update(`${f}\n`).update(await readFile(path.join(HERE, f)));
  return h.digest('hex');
}

/** Bytes the files under `dir` take (du's apparent size), for sizing the root filesystem. */
function contentBytes(dir: string): number {
  return Number(run('du', ['-s', '-B1', '--apparent-size', dir]).split('\t')[0]);
}

export async function buildDebianOs(opts: DebianOsOptions): Promise<{ info: DebianOsInfo; skipped: boolean }> {
  const log = opts.log ?? (() => {});
  if (!/^[A-Za-z0-9._+-]+$/.test(opts.version) || opts.version.startsWith('.')) throw new Error(`invalid image version ${JSON.stringify(opts.version)}`);
  const kernelPkg = resolveDependency('linux-image-amd64', 'linux-image-');
  const tracked = [kernelPkg, 'cloud-init', 'systemd', 'openssh-server', 'initramfs-tools', 'python3'];
  const versions = candidateVersions(tracked);
  const print = await fingerprint(opts.version, versions);
  const outDir = path.join(opts.imagesDir, opts.version);
  const infoFile = path.join(outDir, 'build-info.json');
  const imageFile = path.join(outDir, 'install_image.bin.zst');
  if (!opts.force && existsSync(infoFile) && existsSync(imageFile)) {
    const old = JSON.parse(await readFile(infoFile, 'utf8')) as DebianOsInfo;
    if (old.fingerprint === print) return { info: old, skipped: true };
  }
  if (process.getuid?.() !== 0) throw new Error('the Debian OS image is built with mmdebstrap --mode=root: run as root');
  for (const tool of ['mmdebstrap', 'mkfs.ext4', 'zstd']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) throw new Error(`${tool} is missing (apt-get install mmdebstrap e2fsprogs zstd)`);
  }
  const loaders = candidateVersions(['syslinux', 'syslinux-common', 'syslinux-efi']);
  const syslinuxPkgs = {
    syslinux: await fetchPackage('syslinux', opts.cacheDir, loaders['syslinux']),
    syslinuxCommon: await fetchPackage('syslinux-common', opts.cacheDir, loaders['syslinux-common']),
    syslinuxEfi: await fetchPackage('syslinux-efi', opts.cacheDir, loaders['syslinux-efi']),
  } satisfies Record<string, DebianPackage>;

  const seconds: Record<string, number> = {};
  let t = performance.now();
  const step = (name: string) => {
    const now = performance.now();
    seconds[name] = Math.round((now - t) / 100) / 10;
    t = now;
    log(`debian-os: ${name} ${seconds[name]} s`);
  };
  await mkdir(opts.cacheDir, { recursive: true });
  const work = await mkdtemp(path.join(opts.cacheDir, 'debian-os-'));
  try {
    const rootfs = path.join(work, 'rootfs');
    const args = [
      '--mode=root', '--variant=apt', '--format=directory', '--quiet',
      `--include=${DEBIAN_OS_PACKAGES.join(',')}`,
      ...DPKG_EXCLUDES.map((p) => `--dpkgopt=path-exclude=${p}`),
      ...DPKG_INCLUDES.map((p) => `--dpkgopt=path-include=${p}`),
      // Merged /usr by symlinks, not by the usrmerge package (which pulls in ~55 MB of perl).
      '--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr',
      `--setup-hook=${path.join(HOOKS, 'setup.sh')} "$1"`,
      `--customize-hook=${path.join(HOOKS, 'customize.sh')} "$1" ${opts.version}`,
      'bookworm', rootfs, opts.sources ?? defaultSources(),
    ];
    log(`debian-os: mmdebstrap ${DEBIAN_OS_PACKAGES.join(' ')}`);
    const r = spawnSync('mmdebstrap', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 256 * 1024 * 1024 });
    if (r.status !== 0) throw new Error(`mmdebstrap failed (exit ${r.status}):\n${(r.stderr || r.stdout || '').split('\n').slice(-30).join('\n')}`);
    step('mmdebstrap');

    const packages = Object.fromEntries(
      run('chroot', [rootfs, 'dpkg-query', '-W', '-f', '${Package} ${Version}\\n']).trim().split('\n').map((l) => l.split(' ') as [string, string]),
    );
    const boot = path.join(rootfs, 'boot');
    const vmlinuz = (await readdir(boot)).find((f) => f.startsWith('vmlinuz-'));
    if (!vmlinuz) throw new Error('the image has no /boot/vmlinuz-*');
    const kver = vmlinuz.slice('vmlinuz-'.length);
    await copyFile(path.join(boot, vmlinuz), path.join(work, 'vmlinuz'));
    await copyFile(path.join(boot, `initrd.img-${kver}`), path.join(work, 'initrd.img'));
    const kernelBytes = (await stat(path.join(work, 'vmlinuz'))).size;
    const initrdBytes = (await stat(path.join(work, 'initrd.img'))).size;

    // ESP: room for a second kernel + initramfs (mayu-update-esp writes the new one beside the old).
    const rootContent = contentBytes(rootfs);
    const layout = osDiskLayout(2 * (kernelBytes + initrdBytes) + BOOT_PARTITION_OVERHEAD, rootContent * (1 + ROOT_SLACK) + ROOT_SLACK_BYTES);
    const bootImg = await buildBootPartition(work, layout.boot, 'MAYU-ESP', [path.join(work, 'vmlinuz'), path.join(work, 'initrd.img')],
      syslinuxConfig('debian', 'initrd.img', KERNEL_APPEND), syslinuxPkgs);
    const rootImg = path.join(work, 'root.img');
    run('mkfs.ext4', ['-q', '-F', '-L', 'mayu-root', '-d', rootfs, '-E', 'root_owner=0:0', rootImg, `${(layout.root.sectors * SECTOR) / 1024}k`]);
    step('filesystems');

    // The disk image, sparse: MBR, ESP, root at their offsets.
    const diskFile = path.join(work, 'install_image.bin');
    const disk = await open(diskFile, 'w');
    try {
      await disk.write(mbrSector(await syslinuxMbrCode(syslinuxPkgs), [layout.boot, layout.root], 0x6d617975), 0, SECTOR, 0);
      await disk.write(await readFile(bootImg), 0, undefined, layout.boot.start * SECTOR);
      await disk.truncate(layout.totalSectors * SECTOR);
    } finally {
      await disk.close();
    }
    // root.img is ~0.5 GB: dd it in (sparse, conv=notrunc) instead of reading it into memory.
    run('dd', [`if=${rootImg}`, `of=${diskFile}`, 'bs=1M', `seek=${(layout.root.start * SECTOR) / (1024 * 1024)}`, 'conv=notrunc,sparse', 'status=none']);
    step('disk');
    run('zstd', ['-q', '-T2', `-${ZSTD_LEVEL}`, '-f', diskFile, '-o', `${diskFile}.zst`]);
    step('zstd');

    await mkdir(outDir, { recursive: true });
    await copyFile(`${diskFile}.zst`, `${imageFile}.tmp`);
    await rename(`${imageFile}.tmp`, imageFile);
    const info: DebianOsInfo = {
      fingerprint: print,
      version: opts.version,
      packages,
      sizes: { raw: layout.totalSectors * SECTOR, compressed: (await stat(imageFile)).size, rootContent, kernel: kernelBytes, initrd: initrdBytes },
      seconds,
    };
    await writeFile(`${infoFile}.tmp`, `${JSON.stringify(info, null, 2)}\n`);
    await rename(`${infoFile}.tmp`, infoFile);
    return { info, skipped: false };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

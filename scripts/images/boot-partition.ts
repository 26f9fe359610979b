// The FAT EFI system partition both OS images boot from, under BIOS and UEFI alike: SeaBIOS or a
// server BIOS → the MBR code (syslinux's mbr.bin) → syslinux (ldlinux.sys); UEFI → the
// removable-media path EFI/BOOT/BOOTX64.EFI = syslinux.efi. Both read the same syslinux.cfg,
// kernel and initramfs. Made with mkfs.vfat + mcopy and syslinux's mtools-based installer on an
// image file: no mount, no loop device, no root.
import { execFileSync } from 'node:child_process';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { DebianPackage } from './debian.ts';
import type { MbrPartition } from './mbr.ts';
import { SECTOR } from './mbr.ts';

const run = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

export interface SyslinuxPackages {
  syslinux: DebianPackage;
  syslinuxCommon: DebianPackage;
  syslinuxEfi: DebianPackage;
}

/** syslinux.cfg booting /vmlinuz with /<initrd> and the given kernel command line, on the serial console. */
export function syslinuxConfig(label: string, initrd: string, append: string): string {
  return ['SERIAL 0 115200', 'PROMPT 0', 'TIMEOUT 0', `DEFAULT ${label}`, `LABEL ${label}`, '  LINUX /vmlinuz', `  INITRD /${initrd}`, `  APPEND ${append}`, ''].join('\n');
}

/** FAT16 overhead (FATs, root dir, cluster slack), ldlinux.sys/.c32 (~140 KB), syslinux.efi + ldlinux.e64 (~300 KB). */
export const BOOT_PARTITION_OVERHEAD = 2 * 1024 * 1024;

/**
 * Writes `<work>/boot.img`, the FAT16 image of `partition` (label `volumeLabel`) holding `files`
 * (absolute paths, copied to the root), syslinux.cfg (`config`) and both loaders. Returns its path.
 */
export async function buildBootPartition(work: string, partition: MbrPartition, volumeLabel: string, files: readonly string[], config: string, pkgs: SyslinuxPackages): Promise<string> {
  const cfg = path.join(work, 'syslinux.cfg');
  await writeFile(cfg, config);
  const img = path.join(work, 'boot.img');
  run('mkfs.vfat', ['-C', '-F', '16', '-n', volumeLabel, '-i', '6d617975', '-h', String(partition.start), img, String((partition.sectors * SECTOR) / 1024)]);
  run('mcopy', ['-i', img, ...files, cfg, '::/']);
  run(path.join(pkgs.syslinux.root, 'usr/bin/syslinux'), ['--install', img]);
  run('mmd', ['-i', img, '::/EFI', '::/EFI/BOOT']);
  const efi = path.join(work, 'BOOTX64.EFI');
  await copyFile(path.join(pkgs.syslinuxEfi.root, 'usr/lib/SYSLINUX.EFI/efi64/syslinux.efi'), efi);
  run('mcopy', ['-i', img, efi, path.join(pkgs.syslinuxCommon.root, 'usr/lib/syslinux/modules/efi64/ldlinux.e64'), cfg, '::/EFI/BOOT/']);
  return img;
}

/** syslinux's MBR boot code (440 bytes): it boots the partition marked active. */
export function syslinuxMbrCode(pkgs: SyslinuxPackages): Promise<Buffer> {
  return readFile(path.join(pkgs.syslinuxCommon.root, 'usr/lib/syslinux/mbr/mbr.bin'));
}

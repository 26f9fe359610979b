// Layout of the test OS disk image: MBR, a bootable FAT partition (syslinux, kernel, initramfs)
// and a raw config partition the installer fills with a tar archive. Pure: sizes in, sector
// numbers out.
import { SECTOR, type MbrPartition } from './mbr.ts';

const MIB_SECTORS = (1024 * 1024) / SECTOR;

export interface DiskLayout {
  boot: MbrPartition;
  config: MbrPartition;
  totalSectors: number;
}

/** Partition 1 = FAT boot (0xef, EFI system partition: FAT16, booted by BIOS through its MBR code too), partition 2 = config (0xda, non-FS data), 1 MiB aligned. */
export function testOsDiskLayout(bootBytes: number, configBytes: number): DiskLayout {
  const mib = (bytes: number) => Math.max(1, Math.ceil(bytes / (1024 * 1024))) * MIB_SECTORS;
  const boot: MbrPartition = { start: MIB_SECTORS, sectors: mib(bootBytes), type: 0xef, bootable: true };
  const config: MbrPartition = { start: boot.start + boot.sectors, sectors: mib(configBytes), type: 0xda };
  return { boot, config, totalSectors: config.start + config.sectors };
}

export interface OsDiskLayout {
  boot: MbrPartition;
  root: MbrPartition;
  totalSectors: number;
}

/**
 * Layout of the Debian OS image: partition 1 = FAT EFI system partition (syslinux, kernel,
 * initramfs; BIOS boots it through the MBR code too), partition 2 = the ext4 root (0x83), last,
 * so cloud-init's growpart can grow it to the end of the install disk. 1 MiB aligned.
 */
export function osDiskLayout(bootBytes: number, rootBytes: number): OsDiskLayout {
  const mib = (bytes: number) => Math.max(1, Math.ceil(bytes / (1024 * 1024))) * MIB_SECTORS;
  const boot: MbrPartition = { start: MIB_SECTORS, sectors: mib(bootBytes), type: 0xef, bootable: true };
  const root: MbrPartition = { start: boot.start + boot.sectors, sectors: mib(rootBytes), type: 0x83 };
  return { boot, root, totalSectors: root.start + root.sectors };
}

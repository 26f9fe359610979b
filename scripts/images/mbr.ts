// MBR (DOS) partition table, written by us instead of sfdisk so the disk layout is one pure,
// tested function. Pure: boot code and partitions in, the 512-byte first sector out.

export const SECTOR = 512;

export interface MbrPartition {
  /** First sector (LBA). */
  start: number;
  sectors: number;
  /** Partition type byte, e.g. 0x0e (FAT16 LBA), 0xda (non-FS data). */
  type: number;
  bootable?: boolean;
}

export class MbrError extends Error {}

/**
 * Sector 0: `bootCode` (at most 440 bytes, e.g. syslinux's mbr.bin), the disk signature, up to
 * four primary partitions and 0x55AA. CHS fields hold the "use LBA" maximum (0xfe/0xff/0xff):
 * every BIOS and bootloader we target (SeaBIOS, syslinux mbr.bin) reads the LBA fields.
 */
export function mbrSector(bootCode: Uint8Array, partitions: readonly MbrPartition[], diskSignature: number): Buffer {
  if (bootCode.length > 440) throw new MbrError(`MBR boot code is ${bootCode.length} bytes, at most 440 fit`);
  if (partitions.length > 4) throw new MbrError('an MBR holds at most 4 primary partitions');
  const sector = Buffer.alloc(SECTOR);
  Buffer.from(bootCode).copy(sector, 0);
  sector.writeUInt32LE(diskSignature >>> 0, 440);
  const sorted = [...partitions].sort((a, b) => a.start - b.start);
  sorted.forEach((p, i) => {
    const next = sorted[i + 1];
    if (p.start < 1 || p.sectors < 1) throw new MbrError(`partition ${i + 1}: start ${p.start} and size ${p.sectors} must be at least 1 sector`);
    if (next && p.start + p.sectors > next.start) throw new MbrError(`partition at sector ${p.start} overlaps the one at ${next.start}`);
    if (p.start + p.sectors > 0xffffffff) throw new MbrError('partition beyond 2 TiB does not fit an MBR');
  });
  partitions.forEach((p, i) => {
    const at = 446 + i * 16;
    sector[at] = p.bootable ? 0x80 : 0x00;
    sector.set([0xfe, 0xff, 0xff], at + 1); // CHS first
    sector[at + 4] = p.type;
    sector.set([0xfe, 0xff, 0xff], at + 5); // CHS last
    sector.writeUInt32LE(p.start, at + 8);
    sector.writeUInt32LE(p.sectors, at + 12);
  });
  sector[510] = 0x55;
  sector[511] = 0xaa;
  return sector;
}

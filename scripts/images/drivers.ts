// The drivers the installer (and the test OS) carry: the NICs and disk controllers of real racks
// and of VMs. Only these and their dependencies go into the initramfs; /init loads the ones the
// machine's devices ask for (coldplug by modalias, see initramfs/common.sh).

export interface DriverGroup {
  kind: 'nic' | 'disk' | 'filesystem';
  modules: readonly string[];
}

export const INSTALLER_DRIVERS: readonly DriverGroup[] = [
  {
    kind: 'nic',
    modules: [
      'e1000', 'e1000e', 'igb', 'igc', 'ixgbe', 'i40e', 'ice', // Intel
      'tg3', 'bnxt_en', 'bnx2x', // Broadcom
      'mlx4_en', 'mlx5_core', // Mellanox
      'r8169', '8139too', '8139cp', // Realtek (8139: QEMU's rtl8139)
      'virtio_net', 'vmxnet3', // VMs
    ],
  },
  {
    kind: 'disk',
    modules: [
      'ahci', 'ata_piix', 'nvme', 'megaraid_sas', 'mpt3sas', 'smartpqi', 'hpsa', // real servers (ata_piix: SATA in IDE mode)
      'virtio_blk', 'virtio_scsi', 'virtio_pci', // VMs (virtio_pci is the bus the virtio devices hang on)
      'sd_mod', // SCSI disks: SATA behind ahci, SAS, virtio-scsi
    ],
  },
  // Mounted by the installer for config_store `file` or `nocloud` (Flatcar's OEM partition,
  // ext4/btrfs/vfat): loaded by mayu-modload just before the mount, not at start nor by device. The *_generic crypto modules are what ext4, btrfs and
  // libcrc32c ask for by softdep (modinfo softdep=pre: crypto-crc32c ...), which depends= omits.
  { kind: 'filesystem', modules: ['crc32c_generic', 'xxhash_generic', 'blake2b_generic', 'ext4', 'btrfs', 'vfat', 'nls_cp437', 'nls_ascii'] },
];

/**
 * The test OS's drivers, modules of the cloud kernel it boots (TEST_OS_KERNEL_META in build.ts):
 * the shapes the tests boot to `running` (virtio NIC and disks, vmxnet3; NVMe is built in). The
 * matrix's other NICs and controllers are installer-only rows. No file systems: it reads its
 * config archive raw from the partition.
 */
export const TEST_OS_DRIVERS: readonly string[] = ['vmxnet3', 'virtio_net', 'virtio_blk', 'virtio_scsi', 'virtio_pci', 'sd_mod'];

export const driverModules = (kind?: DriverGroup['kind']): string[] =>
  INSTALLER_DRIVERS.filter((g) => kind === undefined || g.kind === kind).flatMap((g) => g.modules);

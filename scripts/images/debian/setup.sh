#!/bin/sh
# mmdebstrap --setup-hook of the Debian OS image: runs before any package is installed, so the
# kernel's postinst builds the initramfs once, already small. $1 = the new root.
set -eu
root=$1
mkdir -p "$root/etc/initramfs-tools/conf.d" "$root/usr/share/initramfs-tools/modules.d"
# Only the listed modules (the installer's disk drivers, ext4), not "most" (~40 MB of drivers):
# the root filesystem is on a disk the installer could write to.
printf 'MODULES=list\nCOMPRESS=zstd\n' >"$root/etc/initramfs-tools/conf.d/mayu"
printf '%s\n' ahci ata_piix nvme megaraid_sas mpt3sas smartpqi hpsa virtio_blk virtio_scsi virtio_pci sd_mod \
  crc32c_generic ext4 >"$root/usr/share/initramfs-tools/modules.d/mayu"

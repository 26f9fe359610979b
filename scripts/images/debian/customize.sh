#!/bin/sh
# mmdebstrap --customize-hook of the Debian OS image: runs after every package is installed.
# $1 = the new root, $2 = the image version (the folder under images/, reported by the OS as
# its CoreOSVersion so mayu serves the same image on a reinstall).
set -eu
root=$1
version=$2
here=$(dirname "$0")
kver=$(ls "$root/lib/modules")

# Drivers a server needs none of (~160 MB): sound, TV/cameras, GPUs, Wi-Fi, Bluetooth, industrial
# I/O, staging. The serial console and a text-mode VGA console need no DRM driver.
for d in sound drivers/media drivers/gpu drivers/net/wireless drivers/bluetooth net/bluetooth \
  net/mac80211 net/wireless drivers/iio drivers/staging drivers/comedi drivers/input/touchscreen \
  drivers/input/joystick drivers/usb/gadget; do
  rm -rf "$root/lib/modules/$kver/kernel/$d"
done
chroot "$root" depmod -a "$kver"

# Which mayu image this is: the boot_complete unit of the shipped cloud-config reports it.
printf 'IMAGE_ID=mayu-debian\nIMAGE_VERSION=%s\n' "$version" >"$root/etc/mayu-image"

# The disk layout of scripts/images/debian-os.ts: MBR disk signature 6d617975, ESP = 1, root = 2.
cat >"$root/etc/fstab" <<'FSTAB'
PARTUUID=6d617975-02 /         ext4 errors=remount-ro 0 1
PARTUUID=6d617975-01 /boot/efi vfat umask=0077,nofail 0 2
FSTAB
mkdir -p "$root/boot/efi"

# A newer kernel or initramfs goes onto the ESP syslinux boots from.
install -m 0755 "$here/mayu-update-esp" "$root/usr/local/sbin/mayu-update-esp"
mkdir -p "$root/etc/kernel/postinst.d" "$root/etc/initramfs/post-update.d"
ln -sf /usr/local/sbin/mayu-update-esp "$root/etc/kernel/postinst.d/zz-mayu-update-esp"
ln -sf /usr/local/sbin/mayu-update-esp "$root/etc/initramfs/post-update.d/zz-mayu-update-esp"

# cloud-init: config from the NoCloud seed the installer writes (config_store "nocloud"); the
# network is the cloud-config's business (systemd-networkd units), not cloud-init's fallback DHCP.
install -m 0644 "$here/90_mayu.cfg" "$root/etc/cloud/cloud.cfg.d/90_mayu.cfg"
# e2scrub_reap removes stale LVM snapshots of e2scrub: there is no LVM; 12 s of the boot under TCG.
chroot "$root" systemctl mask e2scrub_reap.service

# No server has a floppy drive; QEMU's default one only makes cloud-init's probe log I/O errors.
echo 'blacklist floppy' >"$root/etc/modprobe.d/mayu-no-floppy.conf"

# Network until the cloud-config's static units exist (first boot) and on NICs they do not
# match: DHCP, so cloud-init and the boot_complete unit reach mayu. Lower-numbered files of the
# cloud-config win for the NICs they match.
cat >"$root/etc/systemd/network/99-mayu-dhcp.network" <<'NET'
[Match]
Name=eth* en*

[Network]
DHCP=ipv4
NET
# Online as soon as one NIC is: a server's unplugged NICs must not hold up boot for 2 minutes.
mkdir -p "$root/etc/systemd/system/systemd-networkd-wait-online.service.d"
cat >"$root/etc/systemd/system/systemd-networkd-wait-online.service.d/mayu.conf" <<'UNIT'
[Service]
ExecStart=
ExecStart=/lib/systemd/systemd-networkd-wait-online --any --timeout=60
UNIT
chroot "$root" systemctl enable systemd-networkd.service systemd-resolved.service

# Per machine, made on first boot: machine-id (systemd), SSH host keys (cloud-init).
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id" "$root"/etc/ssh/ssh_host_*
echo localhost >"$root/etc/hostname"
# Leftovers of the build: apt's lists and downloads, logs.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/log/*.log "$root"/var/cache/debconf/*-old

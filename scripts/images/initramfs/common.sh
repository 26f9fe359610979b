# Shared by the installer's and the test OS's /init (busybox sh, PID 1), sourced after setting
# LOG_PREFIX. Every failure goes through halt_with: one clear line on the console, then power off.
# A PID 1 that exits makes the kernel panic and (panic=1) reboot, which would netboot and retry
# forever, so halt_with never returns.

export PATH=/bin:/sbin

say() { echo "$LOG_PREFIX: $*"; }

halt_with() {
  say "ERROR: $*"
  say "powering off"
  sync
  poweroff -f
  while :; do sleep 3600; done
}

mount_basics() {
  mkdir -p /proc /sys /dev /tmp /run
  mount -t proc proc /proc || halt_with "cannot mount /proc"
  mount -t sysfs sysfs /sys || halt_with "cannot mount /sys"
  # devtmpfs: the kernel creates /dev/vda, /dev/vda2, ... itself (no udev, no mknod).
  mount -t devtmpfs devtmpfs /dev || halt_with "cannot mount /dev"
}

# Loads /lib/modules/*.ko in the order the image build computed from their depends= strings.
load_modules() {
  [ -f /lib/modules/load-order ] || return 0
  for m in $(cat /lib/modules/load-order); do
    insmod "/lib/modules/$m.ko" || halt_with "cannot load kernel module $m"
  done
}

# DHCP on the first network interface that gets a lease; sets NIC to its name.
bring_up_network() {
  NIC=''
  n=0
  # Drivers bind asynchronously after insmod: wait up to 10 s for the first interface.
  while [ "$n" -lt 20 ]; do
    for dev in /sys/class/net/*; do
      [ -e "$dev/device" ] && break 2
    done
    usleep 500000
    n=$((n + 1))
  done
  for dev in /sys/class/net/*; do
    [ -e "$dev/device" ] || continue
    name=${dev##*/}
    ip link set "$name" up
    if udhcpc -i "$name" -n -q -t 5 -T 2 -s /etc/udhcpc.script >/tmp/udhcpc.log 2>&1; then
      NIC=$name
      return 0
    fi
  done
  halt_with "no DHCP answer on any network interface ($(ls /sys/class/net | tr '\n' ' '))"
}

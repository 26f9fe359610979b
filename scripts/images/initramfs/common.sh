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

# The wait a busy mayu asks for (README "Limits and overload"): mayu answers 429/503 with
# Retry-After, and puts "retry after N s" in the status line and the body too, because busybox
# wget prints only the status line of a refused request. Reads wget's stderr (or an answer) in
# file $1; prints N, or nothing when the failure was something else.
retry_after_in() {
  sed -n 's/.*retry after \([0-9][0-9]*\) s.*/\1/p' "$1" 2>/dev/null | tail -n 1
}

# Sleeps $1 seconds plus up to half as much again, at random ($RANDOM: busybox ash), so
# machines refused together do not come back together.
sleep_with_jitter() {
  sleep $(($1 + RANDOM % ($1 / 2 + 1)))
}

mount_basics() {
  mkdir -p /proc /sys /dev /tmp /run
  mount -t proc proc /proc || halt_with "cannot mount /proc"
  mount -t sysfs sysfs /sys || halt_with "cannot mount /sys"
  # devtmpfs: the kernel creates /dev/vda, /dev/vda2, ... itself (no udev, no mknod).
  mount -t devtmpfs devtmpfs /dev || halt_with "cannot mount /dev"
}

# PCI devices of a class (02 network, 01 storage) that no driver took: "vendor:device@address" each.
pci_without_driver() {
  for d in /sys/bus/pci/devices/*; do
    [ -e "$d/class" ] || continue
    case $(cat "$d/class") in "0x$1"*) ;; *) continue ;; esac
    [ -e "$d/driver" ] && continue
    v=$(cat "$d/vendor"); dev=$(cat "$d/device")
    echo "${v#0x}:${dev#0x}@${d##*/}"
  done
}

# Coldplug (see /bin/mayu-coldplug), then name what is left without a driver or firmware.
load_drivers() {
  mayu-coldplug
  for x in $(pci_without_driver 02); do say "WARNING: no driver for network controller ${x%@*} at ${x#*@}"; done
  for x in $(pci_without_driver 01); do say "WARNING: no driver for storage controller ${x%@*} at ${x#*@}"; done
  # The kernel names the device and the file: "r8169 0000:01:00.0: Direct firmware load for rtl_nic/... failed".
  dmesg | sed -n 's/^\[[^]]*\] *//; s/^\([^ ]* [^ ]*\): Direct firmware load for \([^ ]*\) failed.*/\1 \2/p' | while read -r drv dev fw; do
    say "WARNING: $drv at ${dev%:} lacks firmware $fw (add its Debian firmware package: npm run build:images -- --firmware PKG)"
  done
}

# DHCP on the NIC the machine netbooted from (iPXE puts its MAC on the kernel command line as
# BOOTIF=01-aa-bb-..., as pxelinux does), then on every other NIC that has a link, in name order;
# sets NIC to the one that got a lease. A NIC without link is skipped at once, one without a DHCP
# server on its segment costs udhcpc's ~6 s.
bring_up_network() {
  NIC=''
  bootif=''
  for arg in $(cat /proc/cmdline); do
    case $arg in BOOTIF=01-*) bootif=$(echo "${arg#BOOTIF=01-}" | tr 'A-F-' 'a-f:') ;; esac
  done
  nics=''
  n=0
  # Drivers bind asynchronously after insmod: wait up to 10 s for the first interface.
  while [ -z "$nics" ] && [ "$n" -lt 20 ]; do
    for dev in /sys/class/net/*; do
      [ -e "$dev/device" ] && nics="$nics ${dev##*/}"
    done
    [ -n "$nics" ] || usleep 500000
    n=$((n + 1))
  done
  nodriver=$(pci_without_driver 02 | sed 's/@.*//' | tr '\n' ' ')
  nodriver=${nodriver% }
  [ -n "$nics" ] || halt_with "no network interface: no driver for network controller(s) ${nodriver:-none found} (PCI vendor:device)"
  ordered=''
  for name in $nics; do
    ip link set "$name" up
    [ -n "$bootif" ] && [ "$(cat "/sys/class/net/$name/address")" = "$bootif" ] && ordered=$name
  done
  for name in $nics; do [ "$name" = "$ordered" ] || ordered="$ordered $name"; done
  # Link negotiation takes a moment on real NICs: up to 5 s for the first carrier (looked at every
  # 0.1 s: a VM's NIC has its carrier at once).
  n=0
  while [ "$n" -lt 50 ]; do
    for name in $ordered; do [ "$(cat "/sys/class/net/$name/carrier" 2>/dev/null)" = 1 ] && break 2; done
    usleep 100000
    n=$((n + 1))
  done
  for name in $ordered; do
    if [ "$(cat "/sys/class/net/$name/carrier" 2>/dev/null)" != 1 ]; then
      say "$name ($(cat "/sys/class/net/$name/address")): no link, skipped"
      continue
    fi
    if udhcpc -i "$name" -n -q -t 3 -T 2 -s /etc/udhcpc.script >/tmp/udhcpc.log 2>&1; then
      NIC=$name
      return 0
    fi
    say "$name ($(cat "/sys/class/net/$name/address")): no DHCP answer"
  done
  [ -n "$nodriver" ] && halt_with "no driver for network controller(s) $nodriver (PCI vendor:device); no DHCP answer on$ordered"
  halt_with "no DHCP answer on any network interface:$ordered"
}

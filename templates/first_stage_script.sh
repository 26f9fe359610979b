#!/bin/sh
{{! First-stage installer script (busybox sh). Every value is inside '...' and shell-escaped, so
    no serial or override can break out of its quotes. }}
# mayu first-stage installer, rendered by mayu {{mayu_version}} for one machine.
# Reports this machine's NICs to mayu, receives its final config, writes the OS image and the
# config to disk, reports "installed" to mayu and reboots only when mayu has recorded it. A
# failure is reported to mayu (install_failed), printed as one ERROR line, and ends the script
# with a non-zero exit: the installer then powers off, never reboots into another attempt.
set -u

# --- values rendered by mayu ---
SERIAL='{{host.serial}}'
MAYU_URL='{{mayu_url}}'
MAYU_VERSION='{{mayu_version}}'
INSTALL_DISK='{{install_disk}}'
REPORT_TOKEN='{{report_token}}'
CONFIG_KIND='{{#use_ignition}}ignition{{/use_ignition}}{{^use_ignition}}cloud-config{{/use_ignition}}'
CONFIG_STORE='{{config_store}}'
CONFIG_PARTITION='{{config_partition}}'
CONFIG_PATH='{{config_path}}'
MACHINE_ID='{{host.machine_id}}'
HOSTNAME='{{host.hostname}}'
# --- end of values ---

HTTP_TIMEOUT=15     # seconds per API request (busybox wget -T segfaults: wrap with timeout)
FAIL_REPORT_TIMEOUT=5  # seconds for the one failure report: best effort, the power-off must not wait long
IMAGE_TIMEOUT=3600  # seconds for downloading and writing the whole image
SET_INSTALLED_ATTEMPTS=5
WORKDIR=/tmp/mayu-install

# --- waiting for a busy mayu (README "Limits and overload") ---
# A busy mayu answers 429 (too many new machines) or 503 (overloaded) with Retry-After, and puts
# "retry after N s" in the status line and the body too: busybox wget prints only the status line
# of a refused request. retry_after_in FILE prints N from wget's stderr or an answer, or nothing.
retry_after_in() {
  sed -n 's/.*retry after \([0-9][0-9]*\) s.*/\1/p' "$1" 2>/dev/null | tail -n 1
}
# Sleeps N seconds plus up to half as much again, at random, so refused machines come back apart.
sleep_with_jitter() {
  sleep $(($1 + RANDOM % ($1 / 2 + 1)))
}
MAX_BUSY_WAITS=120  # about an hour at the default Retry-After
ANSWER=/tmp/mayu-answer

say() { echo "mayu-installer: $*"; }


# --- reports to mayu ---
json_str() { printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g'; }
# A YAML double-quoted scalar's content: as JSON, without control characters.
yaml_str() { json_str "$1" | tr -d '\000-\037\177'; }

# Extra header lines of the reports to mayu, one printf each, e.g. an Authorization header.
report_headers() {
  printf 'Authorization: Bearer %s\r\n' "$REPORT_TOKEN"
}

# PUT URL [JSON-BODY [TIMEOUT]]; prints the HTTP status. busybox wget cannot PUT: HTTP/1.0 over nc.
http_put() {
  case $1 in http://*) ;; *) echo "only http:// URLs can be reported to: $1" >&2; return 1 ;; esac
  rest=${1#http://}
  hostport=${rest%%/*}
  path=/${rest#*/}
  host=${hostport%:*}
  port=${hostport##*:}
  [ "$port" = "$hostport" ] && port=80
  body=${2-}
  {
    printf 'PUT %s HTTP/1.0\r\nHost: %s\r\nContent-Length: %s\r\n' "$path" "$hostport" "$(printf '%s' "$body" | wc -c)"
    [ -n "$body" ] && printf 'Content-Type: application/json\r\n'
    report_headers
    printf '\r\n%s' "$body"
  } | timeout "${3:-$HTTP_TIMEOUT}" nc "$host" "$port" 2>/dev/null >"$ANSWER"
  head -n 1 "$ANSWER" | awk '{ print $2 }'
}

# PUT install_failed (README "Install failures"): Stage, Reason (one line, at most 200 bytes:
# control characters become spaces) and, when the caller set FAIL_DETAILS, Details (lines kept,
# tabs become spaces, other control characters go, at most 4000 bytes). Prints mayu's status.
report_failure() {
  reason=$(printf '%s' "$2" | tr '\000-\037\177' ' ' | cut -c 1-200)
  body="{\"Stage\":\"$(json_str "$1")\",\"Reason\":\"$(json_str "$reason")\""
  if [ -n "${FAIL_DETAILS-}" ]; then
    details=$(printf '%s' "$FAIL_DETAILS" | head -c 4000 | tr '\t' ' ' | tr -d '\000-\010\013-\037\177' |
      sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' | awk 'NR > 1 { printf "\\n" } { printf "%s", $0 }')
    body="$body,\"Details\":\"$details\""
  fi
  http_put "$MAYU_URL/admin/host/$SERIAL/install_failed" "$body}" "$FAIL_REPORT_TIMEOUT"
}

# fail STAGE MESSAGE...: STAGE is driver, network, disk, image, config, report or other. Reports
# to mayu first (best effort), then prints the one ERROR line and exits 1 (the installer powers off).
fail() {
  stage=$1
  shift
  status=$(report_failure "$stage" "$*" 2>/dev/null)  # quiet: a timed-out nc makes sh print "Terminated"
  case $status in
    2??) say "failure reported to mayu" ;;
    *) say "could not report the failure to mayu (answer: ${status:-none})" ;;
  esac
  echo "mayu-installer: ERROR: $*" >&2
  exit 1
}
# --- end of reports ---

if [ "$CONFIG_KIND" = ignition ]; then
  CONFIG_ROUTE=/final-ignition-config.json
else
  CONFIG_ROUTE=/final-cloud-config.yaml
fi

rm -rf "$WORKDIR"
mkdir -p "$WORKDIR/mnt" "$WORKDIR/store" || fail other "cannot create $WORKDIR"

# --- hardware data (HostData, protocol section 3) ---
netdevs=''
for dev in /sys/class/net/*; do
  [ -e "$dev/device" ] || continue      # only real NICs: lo, bridges, bonds and VLANs have no device
  mac=$(cat "$dev/address" 2>/dev/null) || continue
  driver=$(readlink "$dev/device/driver" 2>/dev/null)  # the kernel driver, for profile selectors (new; 0.11 ignores it)
  [ -n "$netdevs" ] && netdevs="$netdevs,"
  netdevs="$netdevs{\"Name\":\"$(json_str "${dev##*/}")\",\"MacAddress\":\"$(json_str "$mac")\"${driver:+,\"Driver\":\"$(json_str "${driver##*/}")\"}}"
done
[ -n "$netdevs" ] || fail network "no network interface with a device in /sys/class/net"

# The connected NIC is the one that reaches mayu (else the one of the default route).
mayu_host=${MAYU_URL#*://}
mayu_host=${mayu_host%%/*}
mayu_host=${mayu_host%:*}
connected_nic=$(ip -4 route get "$mayu_host" 2>/dev/null | sed -n 's/.* dev \([^ ]*\).*/\1/p' | head -n 1)
[ -n "$connected_nic" ] || connected_nic=$(awk '$2 == "00000000" { print $1; exit }' /proc/net/route 2>/dev/null)
[ -n "$connected_nic" ] || fail network "no route to $mayu_host and no default route: cannot tell which NIC is connected"

# The BMC's address when ipmitool is there and the BMC has one; "" otherwise.
ipmi_addr=''
if command -v ipmitool >/dev/null 2>&1; then
  ipmi_addr=$(timeout "$HTTP_TIMEOUT" ipmitool lan print 2>/dev/null | sed -n 's/^IP Address *: *\([0-9.]*\) *$/\1/p' | head -n 1)
  case $ipmi_addr in
    0.0.0.0 | *[!0-9.]* ) ipmi_addr='' ;;
  esac
fi

host_data="{\"Serial\":\"$(json_str "$SERIAL")\",\"NetDevs\":[$netdevs],\"IPMIAddress\":\"$ipmi_addr\",\"ConnectedNIC\":\"$(json_str "$connected_nic")\"}"

# --- final config ---
say "reporting hardware to $MAYU_URL$CONFIG_ROUTE (connected NIC $connected_nic, IPMI ${ipmi_addr:-none})"
waits=0
until timeout "$HTTP_TIMEOUT" wget -q -O "$WORKDIR/config" --header 'Content-Type: application/json' \
  --post-data "$host_data" "$MAYU_URL$CONFIG_ROUTE" 2>"$WORKDIR/wget.err"; do
  wait_s=$(retry_after_in "$WORKDIR/wget.err")
  if [ -z "$wait_s" ] || [ "$waits" -ge "$MAX_BUSY_WAITS" ]; then
    fail config "POST $MAYU_URL$CONFIG_ROUTE failed ($(tail -n 1 "$WORKDIR/wget.err")): no $CONFIG_KIND for this machine"
  fi
  waits=$((waits + 1))
  say "mayu is busy ($(tail -n 1 "$WORKDIR/wget.err")): asking again in about $wait_s s"
  sleep_with_jitter "$wait_s"
done
[ -s "$WORKDIR/config" ] || fail config "mayu answered an empty $CONFIG_KIND"
say "received $CONFIG_KIND: $(wc -c <"$WORKDIR/config") bytes, sha256 $(sha256sum "$WORKDIR/config" 2>/dev/null | cut -d ' ' -f 1)"

# --- install disk ---
# mayu serves the host's image, bzip2, gzip or zstd (the first it has of .zst, .gz, .bz2): the
# decompressor is chosen by the file's magic bytes below.
image_url="$MAYU_URL/images/$SERIAL/install_image.bin"
# Storage drivers bind as the devices show up: go round the coldplug once more (the installer's
# /bin/mayu-coldplug; absent on other installers), then wait up to 10 s for a disk, going round
# again meanwhile (SCSI disks behind a SAS/RAID controller appear seconds after its driver loaded,
# and only then ask for sd_mod).
coldplug() { command -v mayu-coldplug >/dev/null 2>&1 && mayu-coldplug 1; }
coldplug
image_bytes=$(timeout "$HTTP_TIMEOUT" wget -q -S --spider "$image_url" 2>&1 | sed -n 's/^ *Content-Length: *\([0-9]*\).*/\1/p' | tail -n 1)
[ -n "$image_bytes" ] || fail image "HEAD $image_url failed: mayu has no OS image for this machine"

# The names udev gives under /dev/disk/by-path for the common buses (no udev here): NVMe, virtio,
# ATA (ahci, ata_piix), SCSI (virtio-scsi, RAID controllers), SAS with a SAS address.
by_path() {
  dev=$(readlink -f "/sys/block/$1/device")
  pci=$(echo "$dev" | grep -o '[0-9a-f]\{4\}:[0-9a-f]\{2\}:[0-9a-f]\{2\}\.[0-9a-f]' | tail -n 1)
  case $1 in
    nvme*) echo "pci-$pci-nvme-$(cat "/sys/block/$1/nsid" 2>/dev/null || echo 1)" ;;
    vd*) echo "virtio-pci-$pci" ;;
    sd*)
      hctl=${dev##*/}
      ata=$(echo "$dev" | grep -o '/ata[0-9]*/' | tr -d '/a-z')
      sas=$(cat "$dev/sas_address" 2>/dev/null)
      if [ -n "$ata" ]; then
        echo "pci-$pci-ata-$(cat "/sys/class/ata_port/ata$ata/port_no" 2>/dev/null || echo "$ata")"
      elif [ -n "$sas" ]; then
        echo "pci-$pci-sas-$sas-lun-${hctl##*:}"
      else
        echo "pci-$pci-scsi-$hctl"
      fi ;;
  esac
}

# Serial numbers and WWNs a disk answers to: virtio and NVMe have sysfs files, SCSI/ATA disks the
# VPD page 0x80 (4 header bytes, then the serial) and wwid.
disk_ids() {
  for f in "/sys/block/$1/serial" "/sys/block/$1/device/serial" "/sys/block/$1/wwid" "/sys/block/$1/device/wwid"; do
    [ -r "$f" ] && tr -d '\0' <"$f" | sed -e 's/^ *//' -e 's/ *$//'
  done
  [ -r "/sys/block/$1/device/vpd_pg80" ] && tail -c +5 "/sys/block/$1/device/vpd_pg80" | tr -d '\0' | sed -e 's/^ *//' -e 's/ *$//'
}

# One line per disk the installer could use: "size name by-path"; what it leaves out, and why, on
# the console. Out: loop/ram/optical/device-mapper, removable and USB disks, disks with a mounted
# filesystem (what the installer booted from), disks smaller than the compressed image.
list_disks() {
  for b in /sys/block/*; do
    name=${b##*/}
    case $name in loop* | ram* | zram* | sr* | fd* | dm-* | md* | nbd*) continue ;; esac
    [ -e "$b/device" ] || continue
    size=$(( $(cat "$b/size") * 512 ))
    why=''
    [ "$(cat "$b/removable" 2>/dev/null)" = 1 ] && why='removable'
    case $(readlink -f "$b/device") in */usb[0-9]*) why='USB' ;; esac
    grep -q "^/dev/$name" /proc/mounts && why='mounted (the installer booted from it)'
    [ -z "$why" ] && [ "$size" -lt "$image_bytes" ] && why="smaller than the image ($image_bytes bytes compressed)"
    if [ -n "$why" ]; then
      say "disk /dev/$name: $size bytes, $(by_path "$name"): $why, not a candidate" >&2
    else
      echo "$size $name $(by_path "$name")"
    fi
  done
}

install_disk_setting=$INSTALL_DISK
n=0
while :; do
  candidates=$(list_disks 2>"$WORKDIR/not-candidates" | sort -n -k1,1 -k3,3)
  { [ -n "$candidates" ] || [ "$n" -ge 10 ]; } && break
  sleep 1
  coldplug
  n=$((n + 1))
done
cat "$WORKDIR/not-candidates" >&2
echo "$candidates" | while read -r size name path; do [ -n "$name" ] && say "disk /dev/$name: $size bytes, $path"; done
no_driver() {
  for d in /sys/bus/pci/devices/*; do
    case $(cat "$d/class") in 0x01*) [ -e "$d/driver" ] || printf ' %s:%s' "$(cat "$d/vendor" | cut -c 3-)" "$(cat "$d/device" | cut -c 3-)" ;; esac
  done
}
case $INSTALL_DISK in
  auto)
    # The rule: the smallest candidate (the boot SSD beside big data disks); among equal sizes the
    # first by by-path (PCI slot, then port/target), the same disk on identical machines.
    chosen=$(echo "$candidates" | head -n 1 | awk '{ print $2 }')
    [ -n "$chosen" ] || fail disk "no suitable install disk among $(ls /sys/block | tr '\n' ' ')(storage controllers without a driver:$(no_driver))"
    INSTALL_DISK=/dev/$chosen ;;
  serial:* | wwn:*)
    want=$(echo "${INSTALL_DISK#*:}" | tr 'A-Z' 'a-z')
    matches=$(echo "$candidates" | while read -r size name path; do
      [ -n "$name" ] || continue
      for id in $(disk_ids "$name" | tr 'A-Z' 'a-z'); do
        case $id in "$want" | "naa.$want" | "eui.$want" | "naa.${want#0x}" | "eui.${want#0x}") echo "$name"; break ;; esac
      done
    done)
    [ "$(echo "$matches" | grep -c .)" = 1 ] || fail disk "install_disk $INSTALL_DISK matches $(echo "$matches" | grep -c .) candidate disks (${matches:-none}), not exactly one"
    INSTALL_DISK=/dev/$matches ;;
  /dev/disk/by-path/*)
    want=${INSTALL_DISK#/dev/disk/by-path/}
    matches=$(echo "$candidates" | awk -v p="$want" '$3 == p { print $2 }')
    [ "$(echo "$matches" | grep -c .)" = 1 ] || fail disk "install_disk $INSTALL_DISK names no candidate disk (by-path names here:$(echo "$candidates" | awk '{ printf " %s", $3 }'))"
    INSTALL_DISK=/dev/$matches ;;
  /dev/*)
    [ -b "$INSTALL_DISK" ] || fail disk "install disk $INSTALL_DISK is not a block device (storage controllers without a driver:$(no_driver)); set install_disk in templates_env or a host override"
    ;;
  *) fail disk "install_disk '$INSTALL_DISK' is none of auto, /dev/..., /dev/disk/by-path/..., serial:..., wwn:..." ;;
esac
say "install disk: $INSTALL_DISK (install_disk $install_disk_setting)"

# --- OS image ---
say "writing $image_url to $INSTALL_DISK"
rm -f "$WORKDIR/failed"
# decompress: reads the image on stdin, picks the decompressor by its first bytes (read one at a
# time with dd, so none past them is consumed) and puts them back in front of the rest.
decompress() {
  dd bs=1 count=4 of="$WORKDIR/magic" 2>/dev/null
  magic=$(od -A n -t x1 "$WORKDIR/magic" | tr -d ' \n')
  case $magic in
    425a68*) set -- bunzip2 -c ;;
    1f8b*) set -- gunzip -c ;;
    28b52ffd) set -- zstd -d -q -c ;;
    *) echo "decompression: the image is neither bzip2, gzip nor zstd (first bytes ${magic:-none})" >>"$WORKDIR/failed"; cat >/dev/null; return ;;
  esac
  command -v "$1" >/dev/null 2>&1 || { echo "decompression: this installer has no $1" >>"$WORKDIR/failed"; cat >/dev/null; return; }
  say "image starts with $magic: $*" >&2
  { cat "$WORKDIR/magic" && cat; } | "$@" || echo "$1 (corrupt or truncated image)" >>"$WORKDIR/failed"
}
# No pipefail in every sh: each stage records its own failure.
{ timeout "$IMAGE_TIMEOUT" wget -q -O - "$image_url" || echo "download of $image_url" >>"$WORKDIR/failed"; } |
  decompress |
  { dd of="$INSTALL_DISK" bs=1M conv=fsync 2>/dev/null || echo "writing to $INSTALL_DISK" >>"$WORKDIR/failed"; }
[ -e "$WORKDIR/failed" ] && fail image "image not installed: $(head -n 1 "$WORKDIR/failed") failed"
sync

# --- config onto the new disk ---
case $INSTALL_DISK in
  *[0-9]) part="${INSTALL_DISK}p$CONFIG_PARTITION" ;;  # /dev/nvme0n1 -> /dev/nvme0n1p6
  *) part="$INSTALL_DISK$CONFIG_PARTITION" ;;
esac
blockdev --rereadpt "$INSTALL_DISK" 2>/dev/null
n=0
while [ ! -b "$part" ] && [ "$n" -lt 10 ]; do sleep 1; n=$((n + 1)); done
[ -b "$part" ] || fail image "partition $part did not appear after writing the image"

printf 'SERIAL=%s\nMAYU_VERSION=%s\nMAYU_URL=%s\nREPORT_TOKEN=%s\n' "$SERIAL" "$MAYU_VERSION" "$MAYU_URL" "$REPORT_TOKEN" >"$WORKDIR/store/mayu-env"
cp "$WORKDIR/config" "$WORKDIR/store/config" || fail config "cannot copy the $CONFIG_KIND in $WORKDIR"
# The installer loads its file-system modules only before a mount (/bin/mayu-modload; other
# installers have them built in or loaded already).
load_filesystems() { command -v mayu-modload >/dev/null 2>&1 && mayu-modload; return 0; }
case $CONFIG_STORE in
  tar)
    # A plain tar archive written raw onto the partition: the installed OS reads it with tar.
    tar -c -f "$WORKDIR/store.tar" -C "$WORKDIR/store" config mayu-env || fail config "cannot pack the $CONFIG_KIND and mayu-env"
    size=$(wc -c <"$WORKDIR/store.tar")
    room=$(blockdev --getsize64 "$part" 2>/dev/null || echo 0)
    [ "$size" -le "$room" ] || fail config "config archive ($size bytes) does not fit partition $part ($room bytes)"
    dd if="$WORKDIR/store.tar" of="$part" bs=512 conv=fsync 2>/dev/null || fail config "cannot write the config archive to $part"
    say "stored $CONFIG_KIND and mayu-env as a tar archive on $part"
    ;;
  file)
    load_filesystems
    mount "$part" "$WORKDIR/mnt" || fail config "cannot mount $part to write the $CONFIG_KIND"
    if ! { mkdir -p "$WORKDIR/mnt${CONFIG_PATH%/*}" && cp "$WORKDIR/config" "$WORKDIR/mnt$CONFIG_PATH"; }; then
      umount "$WORKDIR/mnt"
      fail config "cannot write $CONFIG_PATH on $part"
    fi
    umount "$WORKDIR/mnt" || fail config "cannot unmount $part"
    say "stored $CONFIG_KIND as $CONFIG_PATH on $part"
    ;;
  nocloud)
    # cloud-init's NoCloud seed folder (config_path, /var/lib/cloud/seed/nocloud) in the root
    # filesystem: user-data = the cloud-config, meta-data = instance-id (the machine ID: a
    # reinstall with a new one is a new instance) and local-hostname. 0600: it holds the token.
    [ "$CONFIG_KIND" = cloud-config ] || fail config "config_store nocloud takes a cloud-config, not Ignition (use_ignition is set)"
    load_filesystems
    mount "$part" "$WORKDIR/mnt" || fail config "cannot mount $part to write the NoCloud seed"
    seed="$WORKDIR/mnt$CONFIG_PATH"
    if ! { mkdir -p "$seed" && cp "$WORKDIR/config" "$seed/user-data" &&
      printf 'instance-id: "%s"\nlocal-hostname: "%s"\n' "$(yaml_str "$MACHINE_ID")" "$(yaml_str "$HOSTNAME")" >"$seed/meta-data" &&
      chmod 0700 "$seed" && chmod 0600 "$seed/user-data" "$seed/meta-data"; }; then
      umount "$WORKDIR/mnt"
      fail config "cannot write the NoCloud seed $CONFIG_PATH on $part"
    fi
    umount "$WORKDIR/mnt" || fail config "cannot unmount $part"
    say "stored $CONFIG_KIND as NoCloud user-data and meta-data (instance-id $MACHINE_ID, hostname $HOSTNAME) in $CONFIG_PATH on $part"
    ;;
  *) fail config "unknown config_store '$CONFIG_STORE' (file, tar or nocloud)" ;;
esac
sync

# --- report and reboot ---
installed_url="$MAYU_URL/admin/host/$SERIAL/set_installed"
attempt=1
waits=0
while :; do
  status=$(http_put "$installed_url")
  case $status in 2??) break ;; esac
  wait_s=$(retry_after_in "$ANSWER")
  if [ -n "$wait_s" ] && [ "$waits" -lt "$MAX_BUSY_WAITS" ]; then
    waits=$((waits + 1))
    say "PUT $installed_url answered $status (mayu is busy): asking again in about $wait_s s"
    sleep_with_jitter "$wait_s"
    continue
  fi
  if [ "$attempt" -ge "$SET_INSTALLED_ATTEMPTS" ]; then
    fail report "PUT $installed_url failed $attempt times (last answer: ${status:-none}): not rebooting, mayu would netboot and reinstall this machine"
  fi
  say "PUT $installed_url answered ${status:-nothing}, retrying in 5 s"
  attempt=$((attempt + 1))
  sleep 5
done
say "installed (mayu answered $status); rebooting"
sync
reboot -f

#!/bin/sh
{{! First-stage installer script (busybox sh). Every value is inside '...' and shell-escaped, so
    no serial or override can break out of its quotes. }}
# mayu first-stage installer, rendered by mayu {{mayu_version}} for one machine.
# Reports this machine's NICs to mayu, receives its final config, writes the OS image and the
# config to disk, reports "installed" to mayu and reboots only when mayu has recorded it.
set -u

# --- values rendered by mayu ---
SERIAL='{{host.serial}}'
MAYU_URL='{{mayu_url}}'
INSTALL_DISK='{{install_disk}}'
REPORT_TOKEN='{{report_token}}'
CONFIG_KIND='{{#use_ignition}}ignition{{/use_ignition}}{{^use_ignition}}cloud-config{{/use_ignition}}'
# --- end of values ---

HTTP_TIMEOUT=15     # seconds per API request (busybox wget -T segfaults: wrap with timeout)
IMAGE_TIMEOUT=3600  # seconds for downloading and writing the whole image
SET_INSTALLED_ATTEMPTS=5
WORKDIR=/tmp/mayu-install

say() { echo "mayu-installer: $*"; }
fail() { echo "mayu-installer: ERROR: $*" >&2; exit 1; }

if [ "$CONFIG_KIND" = ignition ]; then
  CONFIG_ROUTE=/final-ignition-config.json
  CONFIG_PART=6                         # OEM partition: Ignition reads config.ign from it
  CONFIG_FILE=/config.ign
else
  CONFIG_ROUTE=/final-cloud-config.yaml
  CONFIG_PART=9                         # ROOT partition: coreos-cloudinit's install user_data
  CONFIG_FILE=/var/lib/coreos-install/user_data
fi

mkdir -p "$WORKDIR/mnt" || fail "cannot create $WORKDIR"

# --- hardware data (HostData, protocol section 3) ---
json_str() { printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g'; }

netdevs=''
for dev in /sys/class/net/*; do
  [ -e "$dev/device" ] || continue      # only real NICs: lo, bridges and bonds have no device
  mac=$(cat "$dev/address" 2>/dev/null) || continue
  [ -n "$netdevs" ] && netdevs="$netdevs,"
  netdevs="$netdevs{\"Name\":\"$(json_str "${dev##*/}")\",\"MacAddress\":\"$(json_str "$mac")\"}"
done
[ -n "$netdevs" ] || fail "no network interface with a device in /sys/class/net"
connected_nic=$(awk '$2 == "00000000" { print $1; exit }' /proc/net/route 2>/dev/null)
[ -n "$connected_nic" ] || fail "no default route: cannot tell which NIC is connected"
host_data="{\"Serial\":\"$(json_str "$SERIAL")\",\"NetDevs\":[$netdevs],\"IPMIAddress\":\"\",\"ConnectedNIC\":\"$(json_str "$connected_nic")\"}"

# --- final config ---
say "reporting hardware to $MAYU_URL$CONFIG_ROUTE"
timeout "$HTTP_TIMEOUT" wget -q -O "$WORKDIR/config" --header 'Content-Type: application/json' \
  --post-data "$host_data" "$MAYU_URL$CONFIG_ROUTE" || fail "POST $MAYU_URL$CONFIG_ROUTE failed: no $CONFIG_KIND for this machine"
[ -s "$WORKDIR/config" ] || fail "mayu answered an empty $CONFIG_KIND"

# --- OS image ---
image_url="$MAYU_URL/images/$SERIAL/install_image.bin.bz2"
[ -b "$INSTALL_DISK" ] || fail "install disk $INSTALL_DISK is not a block device (set install_disk in templates_env or a host override)"
say "writing $image_url to $INSTALL_DISK"
rm -f "$WORKDIR/failed"
# No pipefail in every sh: each stage records its own failure.
{ timeout "$IMAGE_TIMEOUT" wget -q -O - "$image_url" || echo "download of $image_url" >>"$WORKDIR/failed"; } |
  { bunzip2 -c || echo "bunzip2 (corrupt or truncated image)" >>"$WORKDIR/failed"; } |
  { dd of="$INSTALL_DISK" bs=1M 2>/dev/null || echo "writing to $INSTALL_DISK" >>"$WORKDIR/failed"; }
[ -e "$WORKDIR/failed" ] && fail "image not installed: $(head -n 1 "$WORKDIR/failed") failed"
sync

# --- config onto the new disk ---
case $INSTALL_DISK in
  *[0-9]) part="${INSTALL_DISK}p$CONFIG_PART" ;;  # /dev/nvme0n1 -> /dev/nvme0n1p6
  *) part="$INSTALL_DISK$CONFIG_PART" ;;
esac
blockdev --rereadpt "$INSTALL_DISK" 2>/dev/null
n=0
while [ ! -b "$part" ] && [ "$n" -lt 10 ]; do sleep 1; n=$((n + 1)); done
[ -b "$part" ] || fail "partition $part did not appear after writing the image"
mount "$part" "$WORKDIR/mnt" || fail "cannot mount $part to write the $CONFIG_KIND"
if ! { mkdir -p "$WORKDIR/mnt${CONFIG_FILE%/*}" && cp "$WORKDIR/config" "$WORKDIR/mnt$CONFIG_FILE"; }; then
  umount "$WORKDIR/mnt"
  fail "cannot write $CONFIG_FILE on $part"
fi
umount "$WORKDIR/mnt" || fail "cannot unmount $part"
sync

# --- report and reboot ---
# Prints the HTTP status of an empty-body PUT. busybox wget cannot PUT: without curl, speak HTTP/1.0 over nc.
http_put() {
  if command -v curl >/dev/null 2>&1; then
    timeout "$HTTP_TIMEOUT" curl -s -o /dev/null -w '%{http_code}' -X PUT -H "Authorization: Bearer $REPORT_TOKEN" --data-binary '' "$1"
    return
  fi
  case $1 in http://*) ;; *) return ;; esac
  rest=${1#http://}
  hostport=${rest%%/*}
  path=/${rest#*/}
  host=${hostport%:*}
  port=${hostport##*:}
  [ "$port" = "$hostport" ] && port=80
  # busybox nc quits at the end of its input: keep it open so the answer (after a commit) arrives.
  { printf 'PUT %s HTTP/1.0\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Length: 0\r\n\r\n' "$path" "$hostport" "$REPORT_TOKEN"; sleep 2; } |
    timeout "$HTTP_TIMEOUT" nc "$host" "$port" 2>/dev/null | head -n 1 | awk '{ print $2 }'
}

installed_url="$MAYU_URL/admin/host/$SERIAL/set_installed"
attempt=1
while :; do
  status=$(http_put "$installed_url")
  case $status in 2??) break ;; esac
  if [ "$attempt" -ge "$SET_INSTALLED_ATTEMPTS" ]; then
    fail "PUT $installed_url failed $attempt times (last answer: ${status:-none}): not rebooting, mayu would netboot and reinstall this machine"
  fi
  say "PUT $installed_url answered ${status:-nothing}, retrying in 5 s"
  attempt=$((attempt + 1))
  sleep 5
done
say "installed; rebooting"
sync
reboot -f

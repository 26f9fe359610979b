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
# --- end of values ---

HTTP_TIMEOUT=15     # seconds per API request (busybox wget -T segfaults: wrap with timeout)
FAIL_REPORT_TIMEOUT=5  # seconds for the one failure report: best effort, the power-off must not wait long
IMAGE_TIMEOUT=3600  # seconds for downloading and writing the whole image
SET_INSTALLED_ATTEMPTS=5
WORKDIR=/tmp/mayu-install

say() { echo "mayu-installer: $*"; }

# --- reports to mayu ---
json_str() { printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g'; }

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
  } | timeout "${3:-$HTTP_TIMEOUT}" nc "$host" "$port" 2>/dev/null | head -n 1 | awk '{ print $2 }'
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
  [ -n "$netdevs" ] && netdevs="$netdevs,"
  netdevs="$netdevs{\"Name\":\"$(json_str "${dev##*/}")\",\"MacAddress\":\"$(json_str "$mac")\"}"
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
timeout "$HTTP_TIMEOUT" wget -q -O "$WORKDIR/config" --header 'Content-Type: application/json' \
  --post-data "$host_data" "$MAYU_URL$CONFIG_ROUTE" || fail config "POST $MAYU_URL$CONFIG_ROUTE failed: no $CONFIG_KIND for this machine"
[ -s "$WORKDIR/config" ] || fail config "mayu answered an empty $CONFIG_KIND"
say "received $CONFIG_KIND: $(wc -c <"$WORKDIR/config") bytes, sha256 $(sha256sum "$WORKDIR/config" 2>/dev/null | cut -d ' ' -f 1)"

# --- OS image ---
image_url="$MAYU_URL/images/$SERIAL/install_image.bin.bz2"
[ -b "$INSTALL_DISK" ] || fail disk "install disk $INSTALL_DISK is not a block device (set install_disk in templates_env or a host override)"
say "writing $image_url to $INSTALL_DISK"
rm -f "$WORKDIR/failed"
# No pipefail in every sh: each stage records its own failure.
{ timeout "$IMAGE_TIMEOUT" wget -q -O - "$image_url" || echo "download of $image_url" >>"$WORKDIR/failed"; } |
  { bunzip2 -c || echo "bunzip2 (corrupt or truncated image)" >>"$WORKDIR/failed"; } |
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
[ -b "$part" ] || fail disk "partition $part did not appear after writing the image"

printf 'SERIAL=%s\nMAYU_VERSION=%s\nMAYU_URL=%s\nREPORT_TOKEN=%s\n' "$SERIAL" "$MAYU_VERSION" "$MAYU_URL" "$REPORT_TOKEN" >"$WORKDIR/store/mayu-env"
cp "$WORKDIR/config" "$WORKDIR/store/config" || fail config "cannot copy the $CONFIG_KIND in $WORKDIR"
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
    mount "$part" "$WORKDIR/mnt" || fail config "cannot mount $part to write the $CONFIG_KIND"
    if ! { mkdir -p "$WORKDIR/mnt${CONFIG_PATH%/*}" && cp "$WORKDIR/config" "$WORKDIR/mnt$CONFIG_PATH"; }; then
      umount "$WORKDIR/mnt"
      fail config "cannot write $CONFIG_PATH on $part"
    fi
    umount "$WORKDIR/mnt" || fail config "cannot unmount $part"
    say "stored $CONFIG_KIND as $CONFIG_PATH on $part"
    ;;
  *) fail config "unknown config_store '$CONFIG_STORE' (file or tar)" ;;
esac
sync

# --- report and reboot ---
installed_url="$MAYU_URL/admin/host/$SERIAL/set_installed"
attempt=1
while :; do
  status=$(http_put "$installed_url")
  case $status in 2??) break ;; esac
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

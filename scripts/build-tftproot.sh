#!/usr/bin/env bash
# Copies iPXE's chainload binaries from Debian's ipxe package into tftproot/ (or the folder given
# as $1), where mayu's dnsmasq serves them over TFTP: undionly.kpxe for BIOS PXE ROMs, snponly.efi
# for UEFI. Idempotent: files already equal are left alone. IPXE_DIR overrides /usr/lib/ipxe.
set -euo pipefail
src="${IPXE_DIR:-/usr/lib/ipxe}"
dest="${1:-$(cd "$(dirname "$0")/.." && pwd)/tftproot}"
files=(undionly.kpxe snponly.efi)

for f in "${files[@]}"; do
  if [ ! -f "$src/$f" ]; then
    echo "build:tftproot: $src/$f is missing: install Debian's ipxe package (apt-get install --no-install-recommends ipxe)" >&2
    exit 1
  fi
done
mkdir -p "$dest"
for f in "${files[@]}"; do
  if cmp -s "$src/$f" "$dest/$f"; then
    echo "$dest/$f is up to date"
  else
    # World-readable: dnsmasq serves TFTP as user nobody.
    install -m 0644 "$src/$f" "$dest/$f"
    echo "$dest/$f copied from $src"
  fi
done

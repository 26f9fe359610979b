#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 machine or a developer's: installs what is missing
# (Debian packages the tests use, npm dependencies), type-checks, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: native git checks the cluster repo; ignition-validate checks rendered Ignition;
# mayu runs dnsmasq (dnsmasq-base, not dnsmasq: that one adds a system service) in a network
# namespace (iproute2) with busybox's udhcpc as client; ipxe gives the TFTP boot files. The VM
# tests boot QEMU (TCG) with its iPXE ROMs and busybox nc for the port forward; the image build
# (scripts/images) needs cpio, mkfs.vfat, mtools and bzip2, and apt's package lists for
# `apt-get download` of the kernel, busybox-static, syslinux and zstd (never installed). The dashboard
# test drives Debian's chromium (never a downloaded browser) with playwright-core.
missing=()
command -v git >/dev/null || missing+=(git)
command -v ignition-validate >/dev/null || missing+=(ignition)
command -v dnsmasq >/dev/null || missing+=(dnsmasq-base)
command -v busybox >/dev/null || missing+=(busybox-static)
command -v ip >/dev/null || missing+=(iproute2)
[ -f /usr/lib/ipxe/undionly.kpxe ] && [ -f /usr/lib/ipxe/snponly.efi ] || missing+=(ipxe)
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
[ -e /usr/lib/ipxe/qemu/efi-virtio.rom ] || missing+=(ipxe-qemu)
[ -f /usr/share/OVMF/OVMF_CODE_4M.fd ] || missing+=(ovmf)  # UEFI guests (netboot under OVMF, UEFI HTTP boot)
command -v cpio >/dev/null || missing+=(cpio)
command -v mkfs.vfat >/dev/null || missing+=(dosfstools)
command -v mcopy >/dev/null || missing+=(mtools)
command -v bzip2 >/dev/null || missing+=(bzip2)
# The Debian OS image of the Debian VM test (build:images --os debian, root): mmdebstrap, ext4 made
# from a folder, zstd; the test reaches the VM with Debian's ssh. cloud-init gives `cloud-init
# schema` for the render tests (CI only: on a real host the package would configure that host).
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
command -v mkfs.ext4 >/dev/null || missing+=(e2fsprogs)
command -v zstd >/dev/null || missing+=(zstd)
command -v ssh >/dev/null || missing+=(openssh-client)
command -v cloud-init >/dev/null || missing+=(cloud-init)
command -v chromium >/dev/null || missing+=(chromium)
# etcd discovery tests: real etcd members (etcd-server) and etcdctl (etcd-client), both etcd 3.4
command -v etcd >/dev/null || missing+=(etcd-server)
command -v etcdctl >/dev/null || missing+=(etcd-client)
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
if ((${#missing[@]})) || ! apt-cache show linux-image-cloud-amd64 >/dev/null 2>&1; then
  $sudo apt-get update -qq
fi
if ((${#missing[@]})); then
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# npm dependencies, exactly as locked, when absent or older than the lockfile.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

npx tsc --noEmit
# Node 20 does not expand globs given to --test: let find list the files.
node --import tsx --test $(find test -name '*.test.ts' | sort)

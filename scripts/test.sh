#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 machine or a developer's: installs what is missing
# (Debian packages the tests use, npm dependencies), type-checks, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: native git checks the cluster repo; ignition-validate checks rendered Ignition;
# mayu runs dnsmasq (dnsmasq-base, not dnsmasq: that one adds a system service) in a network
# namespace (iproute2) with busybox's udhcpc as client; ipxe gives the TFTP boot files.
missing=()
command -v git >/dev/null || missing+=(git)
command -v ignition-validate >/dev/null || missing+=(ignition)
command -v dnsmasq >/dev/null || missing+=(dnsmasq-base)
command -v busybox >/dev/null || missing+=(busybox-static)
command -v ip >/dev/null || missing+=(iproute2)
[ -f /usr/lib/ipxe/undionly.kpxe ] && [ -f /usr/lib/ipxe/snponly.efi ] || missing+=(ipxe)
if ((${#missing[@]})); then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# npm dependencies, exactly as locked, when absent or older than the lockfile.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

npx tsc --noEmit
# Node 20 does not expand globs given to --test: let find list the files.
node --import tsx --test $(find test -name '*.test.ts' | sort)

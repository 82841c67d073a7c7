#!/usr/bin/env bash
# Installs the Debian packages Trestle's demo and tests use, only those missing.
#   scripts/install-deps.sh           what the plugins and the demo need
#   scripts/install-deps.sh --tests   also the reference plugins and the real runtimes the
#                                     tests drive: podman (with runc, conmon), containerd, and
#                                     Go with libcni for our libcni driver
set -euo pipefail

packages=(iproute2 nftables conntrack util-linux busybox-static musl-tools)
if [ "${1:-}" = "--tests" ]; then
  packages+=(containernetworking-plugins iptables podman runc conmon containerd golang-go golang-github-appc-cni-dev strace)
fi

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "missing packages: ${missing[*]} (run as root, or: apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

#!/usr/bin/env bash
# Installs the Debian packages the tests, benchmarks and demo use, if missing.
set -euo pipefail
pkgs="iproute2 iputils-ping iperf3 tayga babeld dnsmasq nftables conntrack ipset qemu-user-static netcat-openbsd python3 procps shellcheck iptables lua5.1 xz-utils file make gcc-mips-linux-gnu libc6-dev-mips-cross squashfs-tools build-essential cmake pkg-config libjson-c-dev liblua5.1-0-dev lua-posix lua-bit32 libxtables-dev libiptc-dev busybox gawk libssl-dev libb2-dev clang"
missing=""
for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  echo "installing the Debian packages the lab needs:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

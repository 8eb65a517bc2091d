#!/usr/bin/env bash
# bench-mips: is the fast path worth it where the kernel interprets it?
# OpenWrt 23.05 runs Linux 5.15, which has no eBPF JIT for 32-bit MIPS.
# Boots Debian's 32-bit little-endian MIPS kernel (4kc-malta, which has
# both the JIT and the interpreter) under qemu-system-mipsel with a small
# initramfs (lab/mipsvm as PID 1) and measures in it: the fast path's
# program per packet in the kernel (BPF_PROG_TEST_RUN) with the JIT and
# with the interpreter, a packet's round trip through a TUN (what the TUN
# path pays besides translating) and the TUN path's translation itself.
# Software emulation: compare within the run, not with hardware. The
# kernel package comes from the Debian archive (the newest 6.1 4kc-malta
# of bookworm, checked against the archive's index). Needs root only to
# install qemu-system-mips and cpio when missing. TESTS=REGEXP also runs
# the fast path's tests matching it in that kernel, with and without JIT.
set -euo pipefail
cd "$(dirname "$0")/.."
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
W=$(mktemp -d /tmp/bench-mips.XXXXXX)
trap 'rm -rf "$W"' EXIT INT TERM
command -v qemu-system-mipsel > /dev/null && command -v cpio > /dev/null ||
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q qemu-system-mips cpio > /dev/null

# the kernel: the index names the package, its file and its sha256
curl -fsS -m 120 -o "$W/Packages.xz" "$MIRROR/dists/bookworm/main/binary-mipsel/Packages.xz"
read -r pkg file sum < <(xz -dc "$W/Packages.xz" | awk '
  /^Package: / { p = $2 } /^Filename: / { f = $2 } /^SHA256: / { s = $2 }
  /^$/ { if (p ~ /^linux-image-6\.1\.0-[0-9]+-4kc-malta$/) print p, f, s; p = f = s = "" }' | sort -V | tail -n 1)
echo "bench-mips: kernel $pkg" >&2
curl -fsS -m 600 -o "$W/k.deb" "$MIRROR/$file"
echo "$sum  $W/k.deb" | sha256sum -c --quiet
dpkg-deb -x "$W/k.deb" "$W/k"
vmlinuz=$(ls "$W"/k/boot/vmlinuz-*)
tunko=$(find "$W/k/lib/modules" -name tun.ko | head -n 1)

# the initramfs: PID 1 and the test binaries, for mipsle
mkdir -p "$W/root"
export CGO_ENABLED=0 GOOS=linux GOARCH=mipsle GOMIPS=softfloat
go build -trimpath -o "$W/root/init" ./lab/mipsvm
for p in fastpath tun siit; do go test -c -trimpath -o "$W/root/$p.test" ./$p; done
cp "$tunko" "$W/root/tun.ko"
(cd "$W/root" && find . | cpio -o -H newc --quiet | gzip -1 > "$W/initrd.gz")

timeout 1800 qemu-system-mipsel -M malta -m 256 -nographic -no-reboot -kernel "$vmlinuz" -initrd "$W/initrd.gz" \
  -append "console=ttyS0 quiet BENCH_N=${BENCH_N:-2000}${TESTS:+ TESTS=$TESTS}" < /dev/null > "$W/console" 2>&1 || true
grep -E '^(mipsvm|jit=|tun|siit|test)' "$W/console" | tr -d '\r' | tee "$W/out" >&2

metric() { # tag, benchmark name pattern, unit: the figure before the unit
  awk -v t="$1" -v b="$2" -v u="$3" '$1 == t && $2 ~ b { for (i = 3; i < NF; i++) if ($(i+1) == u) print $i }' "$W/out" | head -n 1
}
j4=$(metric jit=1 '4to6-UDP-64' kernel-ns/pkt); i4=$(metric jit=0 '4to6-UDP-64' kernel-ns/pkt)
j6=$(metric jit=1 '6to4-UDP-64' kernel-ns/pkt); i6=$(metric jit=0 '6to4-UDP-64' kernel-ns/pkt)
ja=$(metric jit=1 'ARP' kernel-ns/pkt); ia=$(metric jit=0 'ARP' kernel-ns/pkt)
tun=$(metric tun 'RoundTrip' ns/op); x4=$(metric siit '4to6UDPSmall' ns/op)
[ -n "$i4" ] && [ -n "$tun" ] || { echo "bench-mips: no figures (console in $W/console)" >&2; tail -n 30 "$W/console" >&2; exit 1; }
ratio() { python3 -c "print('%.2f' % ($1/$2 if $2 > 0 else 0))"; }
echo "bench-mips: jit_4to6_ns=$j4 interp_4to6_ns=$i4 jit_6to4_ns=$j6 interp_6to4_ns=$i6 jit_pass_ns=$ja interp_pass_ns=$ia" \
  "tun_roundtrip_ns=$tun siit_4to6_ns=$x4 interp_vs_jit=$(ratio "$i4" "$j4") interp_vs_tun_path=$(ratio "$i4" "$(python3 -c "print($tun + $x4)")")"

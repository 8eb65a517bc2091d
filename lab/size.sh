#!/bin/bash
# size.sh DIST: flash cost of the daemons per target, from make cross's
# DIST/<arch>/ (binaries already stripped by -ldflags '-s -w'). xz -9e of
# the whole file stands in for the squashfs (xz) of an image. Nodes install
# the one multi-call binary gluon-464xlat; the separate daemons are listed
# to show what each costs alone. Last line: the mips_24kc totals.
set -euo pipefail
dist=${1:-dist}
kib() { echo $(( ($1 + 1023) / 1024 )); }
xzsize() { xz -9e -c "$1" | wc -c; }
printf '%-26s %-14s %12s %10s\n' target binary stripped_KiB xz_KiB
for dir in "$dist"/*/; do
	arch=$(basename "$dir")
	[ -f "$dir/gluon-464xlat" ] || continue
	for b in clatd prefixd l3roamd platd gluon-464xlat; do
		[ -f "$dir/$b" ] || continue
		printf '%-26s %-14s %12s %10s\n' "$arch" "$b" "$(kib "$(stat -c %s "$dir/$b")")" "$(kib "$(xzsize "$dir/$b")")"
	done
	multi=$(kib "$(xzsize "$dir/gluon-464xlat")")
	# a CLAT node and an exit install the same binary (platd is a symlink)
	printf '%-26s clat_node_xz=%s exit_node_xz=%s (one binary for clatd, prefixd, l3roamd, platd)\n' "$arch" "$multi" "$multi"
	[ "$arch" = mips_24kc ] && last="size: mips_24kc clat_node_xz=$multi exit_node_xz=$multi"
done
echo "${last:?no mips_24kc build in $dist}"

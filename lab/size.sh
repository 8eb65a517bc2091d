#!/bin/bash
# size.sh DIST: flash cost of the daemons per target, from make cross's
# DIST/<arch>/ (binaries already stripped by -ldflags '-s -w') and make
# ipk's DIST/ipk. Per binary: xz -9e of the whole file. Nodes install the
# one multi-call binary gluon-464xlat; the separate daemons are listed to
# show what each costs alone. Then what a mips_24kc Gluon image pays: the
# squashfs (xz, 256 KiB blocks, as OpenWrt makes it) of everything the
# packages install (the .ipk contents and the Gluon packages' luasrc, files
# and respondd provider) plus
# what they pull in that a Gluon image lacks (lab/size-deps.tsv: kmods and
# iptables extensions, measured once). Last line: the mips_24kc totals.
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
[ -n "${last:-}" ] || { echo "no mips_24kc build in $dist" >&2; exit 1; }

# squashfs_kib DIR...: the xz squashfs of the union of the DIRs, in KiB
squashfs_kib() {
	local root img
	root=$(mktemp -d) img=$(mktemp -u)
	for d in "$@"; do cp -a "$d/." "$root/"; done
	mksquashfs "$root" "$img" -comp xz -b 256K -noappend -no-xattrs -all-root -quiet >/dev/null
	kib "$(stat -c %s "$img")"
	rm -rf "$root" "$img"
}
unpack() { # IPK DIR: the files an .ipk installs
	local tmp
	tmp=$(mktemp -d)
	tar -xzf "$1" -C "$tmp" ./data.tar.gz
	mkdir -p "$2"
	tar -xzf "$tmp/data.tar.gz" -C "$2"
	rm -rf "$tmp"
}
deps_kib() { # ROLE...: xz of what lab/size-deps.tsv lists for those roles
	awk -F'\t' -v roles=" $* " '!/^#/ && index(roles, " " $5 " ") { s += $4 } END { printf "%d", (s + 1023) / 1024 }' "$(dirname "$0")/size-deps.tsv"
}
top=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ipk() { find "$dist/ipk" -name "$1_*_mips_24kc.ipk" | head -1; }
[ -n "$(ipk gluon-464xlat)" ] || { echo "no mips_24kc .ipk in $dist/ipk (make ipk)" >&2; exit 1; }
unpack "$(ipk gluon-464xlat)" "$work/clat"
unpack "$(ipk gluon-464xlat-plat-daemon)" "$work/plat"
# the Gluon packages as gluon.mk installs them: luasrc, files, and the respondd provider
# (src/, built for mips with the cross compiler of the feed test)
for p in clat plat; do
	g=$top/packages/gluon-464xlat-$p
	mkdir -p "$work/gluon-$p"
	cp -a "$g/luasrc/." "$g/files/." "$work/gluon-$p/"
	if [ -f "$g/src/respondd.c" ]; then
		mkdir -p "$work/gluon-$p/usr/lib/respondd"
		if [ ! -d "$work/inc" ]; then
			# respondd.h from respondd's source (lab/upstream/PINS), json-c's headers from the host's
			bash "$top/lab/upstream/fetch.sh" gluon-packages "$work/gp" >/dev/null
			mkdir -p "$work/inc"
			cp "$work/gp/net/respondd/src/respondd.h" "$work/inc/"
			ln -s /usr/include/json-c "$work/inc/json-c"
			# an empty libjson-c to link against (the router has the real one)
			mips-linux-gnu-gcc -shared -o "$work/inc/libjson-c.so" -x c /dev/null
		fi
		make -s -C "$g/src" CC=mips-linux-gnu-gcc CFLAGS=-Os CPPFLAGS="-I$work/inc" LDFLAGS="-L$work/inc" >/dev/null
		mips-linux-gnu-strip -o "$work/gluon-$p/usr/lib/respondd/gluon-464xlat-$p.so" "$g/src/respondd.so"
		rm -f "$g/src/respondd.so"
	fi
done
clat_fs=$(squashfs_kib "$work/clat" "$work/gluon-clat")
exit_fs=$(squashfs_kib "$work/clat" "$work/plat" "$work/gluon-clat" "$work/gluon-plat")
clat_deps=$(deps_kib clat) exit_deps=$(deps_kib clat plat)
printf 'image mips_24kc: squashfs of the packages clat_node=%s KiB exit_node=%s KiB; kmods and iptables extensions a Gluon image lacks clat_node=%s KiB exit_node=%s KiB (lab/size-deps.tsv)\n' \
	"$clat_fs" "$exit_fs" "$clat_deps" "$exit_deps"
awk -F'\t' '!/^#/ { s[$1] += $4 } END { for (p in s) printf "  %-30s %4d KiB xz\n", p, (s[p] + 1023) / 1024 }' "$(dirname "$0")/size-deps.tsv" | sort -k2 -n -r
echo "$last image_clat_node=$((clat_fs + clat_deps)) image_exit_node=$((exit_fs + exit_deps))"

#!/usr/bin/env bash
# image.sh BUILD SITE IMAGE IPK...: what a Gluon image build adds to the
# userland of build.sh (BUILD/staging) for one site, into IMAGE (usr/, etc/):
#   * /lib/gluon/site.json compiled from SITE/site.conf by Gluon's own
#     scripts/site_config.lua, as package/gluon-site does;
#   * the packages: the data of every .ipk given and this project's Gluon
#     packages (packages/gluon-464xlat-*: files and luasrc, as gluon.mk installs them);
#   * the check_site.lua of every Gluon package the image holds, run by
#     Gluon's lib/gluon/check-site.lua: a site they reject fails here;
#   * /etc/rc.d: every init script enabled by rc.common, which is what the
#     packages' postinsts (OpenWrt's default one and ours) do in an image build;
#   * the lab board (/etc/board.d/01_lab, see README.md).
# image.sh BUILD SITE IMAGE --c-l3roamd: the image of a node that runs the C
# l3roamd (gluon-l3roamd, BUILD/c-l3roamd) instead of this project's packages.
set -euo pipefail
here=$(dirname "$(readlink -f "$0")")
top=$(cd "$here/../.." && pwd)
build=$1 site=$2 image=$3
shift 3
ours=1
if [ "${1:-}" = --c-l3roamd ]; then
	ours=0
	shift
fi
st=$build/staging src=$build/src
site=$(cd "$site" && pwd)
rm -rf "$image"
mkdir -p "$image/usr/lib/gluon" "$image/etc/rc.d" "$image/etc/board.d"
export LUA_PATH="$st/usr/lib/lua/?.lua;$st/usr/lib/lua/?/init.lua;;" LUA_CPATH="$st/usr/lib/lua/?.so;;" LD_LIBRARY_PATH=$st/usr/lib

# site.json, as gluon-site builds it
(cd "$src/gluon" && GLUON_SITEDIR=$site GLUON_SITE_CONFIG=site.conf lua5.1 -e \
	'print(require("jsonc").stringify(assert(dofile("scripts/site_config.lua")(os.getenv("GLUON_SITE_CONFIG")))))') \
	> "$image/usr/lib/gluon/site.json"
echo lab > "$image/usr/lib/gluon/site-version"

# shellcheck source=lab/gluon/lib.sh
. "$here/lib.sh"
put() { put_tree "$1" "$image"; }
if [ "$ours" = 1 ]; then
	for p in gluon-464xlat-clat gluon-464xlat-plat; do
		for sub in files luasrc; do
			[ -d "$top/packages/$p/$sub" ] && put "$top/packages/$p/$sub"
		done
		# gluon.mk: src/ built with make, src/respondd.so installed as the package's provider
		if [ -f "$top/packages/$p/src/respondd.c" ]; then
			b=$(mktemp -d)
			cp -a "$top/packages/$p/src/." "$b/"
			make -s -C "$b" CPPFLAGS="-I$st/usr/include" LDFLAGS="-L$st/usr/lib" >&2
			install -D -m755 "$b/respondd.so" "$image/usr/lib/respondd/$p.so"
			rm -rf "$b"
		fi
		# gluon.mk: i18n/LANG.po compiled by gluon-web's gluon-po2lmo
		for po in "$top/packages/$p"/i18n/*.po; do
			[ -f "$po" ] || continue
			lang=$(basename "$po" .po)
			mkdir -p "$image/usr/lib/gluon/web/i18n"
			"$build/host/bin/gluon-po2lmo" "$po" "$image/usr/lib/gluon/web/i18n/$p.$lang.lmo"
		done
	done
else
	put "$build/c-l3roamd"
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for ipk in "$@"; do
	rm -rf "$tmp/ipk" && mkdir -p "$tmp/ipk/data"
	tar -xzf "$ipk" -C "$tmp/ipk" ./data.tar.gz
	tar -xzf "$tmp/ipk/data.tar.gz" -C "$tmp/ipk/data"
	put "$tmp/ipk/data"
done

# A root where an image build's scripts find the image over the userland:
# check-site.lua and rc.common read $IPKG_INSTROOT/lib/gluon, /etc.
root=$tmp/root
mkdir -p "$root"
cp -a "$st/." "$root/"
cp -a "$image/." "$root/"
for l in lib sbin bin; do [ -e "$root/$l" ] || ln -s "usr/$l" "$root/$l"; done

# check_site of every Gluon package in the image, with Gluon's check-site.lua
checks=("$src"/gluon/package/{gluon-core,gluon-client-bridge,gluon-mesh-layer3-common,gluon-mesh-babel,gluon-web-admin}/check_site.lua)
if [ "$ours" = 1 ]; then
	checks+=("$top"/packages/gluon-464xlat-clat/check_site.lua "$top"/packages/gluon-464xlat-plat/check_site.lua)
fi
for cs in "${checks[@]}"; do
	[ -f "$cs" ] || continue
	IPKG_INSTROOT=$root lua5.1 "$root/lib/gluon/check-site.lua" < "$cs" ||
		{ echo "image.sh: $(basename "$(dirname "$cs")")'s check_site.lua rejects $site/site.conf" >&2; exit 1; }
done

# the lab board and the lab's settings (README.md)
install -m 644 "$here/board.d/01_lab" "$image/etc/board.d/01_lab"
put "$here/files"
cp -a "$image/etc/." "$root/etc/"
# the users an image build adds for its packages (USERID in their Makefiles)
cp "$st/etc/passwd" "$st/etc/group" "$image/etc/"
echo 'dnsmasq:x:453:453:dnsmasq:/var:/bin/false' >> "$image/etc/passwd"
echo 'dnsmasq:x:453:' >> "$image/etc/group"
echo 'ubus:x:81:81:ubus:/var/run/ubus:/bin/false' >> "$image/etc/passwd"
echo 'ubus:x:81:' >> "$image/etc/group"

# /etc/rc.d: every init script enabled, by rc.common itself
mkdir -p "$root/etc/rc.d" "$root/var/lock"
for s in "$root"/etc/init.d/*; do
	IPKG_INSTROOT=$root /bin/busybox sh "$root/etc/rc.common" "$s" enable ||
		{ echo "image.sh: enable $(basename "$s") failed" >&2; exit 1; }
done
cp -a "$root/etc/rc.d/." "$image/etc/rc.d/"

#!/usr/bin/env bash
# build.sh DIR: builds the userland of a Gluon v2023.2.x node (OpenWrt 23.05's
# procd, ubus, uci, netifd, fw3, ... and Gluon's own Lua and C) from the
# pinned sources (lab/upstream/PINS) with Debian's toolchain, into
# DIR/staging, laid out as a node's / on Debian's merged /usr. Nothing is
# installed on the host. The result is kept: build.sh does nothing when
# DIR/staging was built from the same pins, patches and script.
#
# What is not upstream code is listed in lab/gluon/README.md (the lab's
# shims and patches, each with why).
set -euo pipefail
here=$(dirname "$(readlink -f "$0")")
top=$(cd "$here/../.." && pwd)
dir=${1:?usage: build.sh DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
stamp=$({
	cat "$top/lab/upstream/PINS" "$here/build.sh" "$here/lib.sh" "$here"/patches/*
	find "$here/shims" -type f | sort | xargs cat
} | sha256sum | cut -c1-16)
if [ -f "$dir/staging/.built-$stamp" ]; then
	exit 0
fi
src=$dir/src bld=$dir/build st=$dir/staging
rm -rf "$src" "$bld" "$st"
mkdir -p "$src" "$bld" "$st"
log=$dir/build.log
: > "$log"
jobs=$(nproc)
for name in libubox uci ubus jsonpath firewall3 procd ubox libnl-tiny netifd iwinfo babeld l3roamd-gluon gluon gluon-packages openwrt-files; do
	bash "$top/lab/upstream/fetch.sh" "$name" "$src/$name"
done

export PKG_CONFIG_PATH=$st/usr/lib/pkgconfig
luainc=-I/usr/include/lua5.1
# GCC 12 warns where OpenWrt's GCC did not, and these trees build with -Werror.
cflags="-I$st/usr/include $luainc -O2 -Wno-error=format-overflow -Wno-error=maybe-uninitialized"
ldflags="-L$st/usr/lib -Wl,-rpath-link,$st/usr/lib -Wl,--no-as-needed"

# The node finds liblua as OpenWrt names it.
mkdir -p "$st/usr/lib"
ln -sfn "$(find /usr/lib -name 'liblua5.1.so' | head -1)" "$st/usr/lib/liblua.so"

# cm NAME SUBDIR [cmake args]: a CMake project of src/SUBDIR, patched with
# patches/NAME-*.patch, installed into staging.
cm() {
	local name=$1 sub=$2 b=$bld/$1
	shift 2
	mkdir -p "$b"
	cp -a "$src/$sub/." "$b/"
	for p in "$here"/patches/"$name"-*.patch; do
		[ -e "$p" ] && patch -s -d "$b" -p1 < "$p"
	done
	(cd "$b" && cmake . -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_INSTALL_LIBDIR=lib -DCMAKE_BUILD_TYPE=None \
		-DCMAKE_C_FLAGS="$cflags ${XCFLAGS:-}" -DCMAKE_EXE_LINKER_FLAGS="$ldflags" \
		-DCMAKE_SHARED_LINKER_FLAGS="$ldflags" -DCMAKE_MODULE_LINKER_FLAGS="$ldflags" \
		-DCMAKE_PREFIX_PATH="$st/usr" "$@" &&
		make -j"$jobs" && make install DESTDIR="$st") >> "$log" 2>&1 ||
		{ tail -30 "$log"; echo "build.sh: $name failed (log: $log)" >&2; exit 1; }
}
# mk NAME SUBDIR [make args]: a plain Makefile project, built in place.
mk() {
	local name=$1 sub=$2 b=$bld/$1
	shift 2
	mkdir -p "$b"
	cp -a "$src/$sub/." "$b/"
	make -C "$b" CC="gcc -Wl,--no-as-needed" CFLAGS="$cflags -fPIC ${XCFLAGS:-}" LDFLAGS="$ldflags" "$@" >> "$log" 2>&1 ||
		{ tail -30 "$log"; echo "build.sh: $name failed (log: $log)" >&2; exit 1; }
}

# shellcheck source=lab/gluon/lib.sh
. "$here/lib.sh"
lua51="-DLUAPATH=/usr/lib/lua -DLUA_CFLAGS=$luainc"
cm libubox libubox -DBUILD_LUA=ON -DBUILD_EXAMPLES=OFF $lua51 -DLUA_LIB=lua5.1
cm uci uci -DBUILD_LUA=ON $lua51
cm ubus ubus -DBUILD_LUA=ON -DBUILD_EXAMPLES=OFF $lua51
cm jsonpath jsonpath
ln -sfn jsonpath "$st/usr/bin/jsonfilter"
cm firewall3 firewall3 -DDISABLE_STATIC_EXTENSIONS=1
ln -sfn firewall3 "$st/usr/sbin/fw3"
cm procd procd -DJAIL_SUPPORT=OFF -DSECCOMP_SUPPORT=OFF -DUTRACE_SUPPORT=OFF
cm ubox ubox
cm libnl-tiny libnl-tiny
XCFLAGS="-I$st/usr/include/libnl-tiny" cm netifd netifd -DLIBNL_LIBS=-lnl-tiny
cm lua-jsonc gluon-packages/libs/lua-jsonc/src
cm libgluonutil gluon/package/libgluonutil/src
cm gluon-core-site gluon/package/gluon-core/src
cm libplatforminfo gluon-packages/libs/libplatforminfo/src -DTARGET=x86 -DSUBTARGET=64
mk lua-platform-info gluon-packages/libs/lua-platform-info/src
install -D -m755 "$bld/lua-platform-info/platform_info.so" "$st/usr/lib/lua/platform_info.so"
mk lua-hash gluon-packages/libs/lua-hash/src
install -D -m755 "$bld/lua-hash/hash.so" "$st/usr/lib/lua/hash.so"
XCFLAGS="-I$st/usr/include/libnl-tiny -D_GNU_SOURCE" mk iwinfo iwinfo BACKENDS=nl80211 FPIC=-fPIC compile
install -D -m755 "$bld/iwinfo/libiwinfo.so.0" "$st/usr/lib/libiwinfo.so.0"
ln -sfn libiwinfo.so.0 "$st/usr/lib/libiwinfo.so"
install -D -m755 "$bld/iwinfo/iwinfo.so" "$st/usr/lib/lua/iwinfo.so"
# babeld's crypto submodules are not in its git archive: shims over libcrypto and libb2.
cp -a "$here/shims/babeld/." "$src/babeld/"
mk babeld babeld LDLIBS="-lrt -lcrypto -lb2" CDEBUGFLAGS="-Os -Wall -Wno-deprecated-declarations"
install -D -m755 "$bld/babeld/babeld" "$st/usr/sbin/babeld"
# The C l3roamd that Gluon v2023.2.x nodes run (freifunk-gluon/packages pins 7c8bceda), with
# gluon-l3roamd's glue and uc, into DIR/c-l3roamd: a layer image.sh puts on the nodes that run it
# instead of this project's packages (they conflict). Its CMakeLists sets its own CFLAGS: libnl-tiny
# is found through pkg-config in the staging tree.
c3=$dir/c-l3roamd
rm -rf "$c3"
mkdir -p "$bld/l3roamd"
cp -a "$src/l3roamd-gluon/." "$bld/l3roamd/"
(cd "$bld/l3roamd" && PKG_CONFIG_SYSROOT_DIR=$st cmake . -DCMAKE_BUILD_TYPE=MinSizeRel \
	-DCMAKE_EXE_LINKER_FLAGS="-Wl,-rpath-link,$st/usr/lib" && make -j"$jobs" l3roamd) >> "$log" 2>&1 ||
	{ tail -30 "$log"; echo "build.sh: l3roamd failed (log: $log)" >&2; exit 1; }
install -D -m755 "$bld/l3roamd/src/l3roamd" "$c3/usr/sbin/l3roamd"
for sub in files luasrc; do
	put_tree "$src/gluon/package/gluon-l3roamd/$sub" "$c3"
done
install -D -m755 "$here/shims/uc" "$c3/usr/bin/uc"
install -D -m644 "$src/gluon-packages/libs/lua-simple-uci/src/simple-uci.lua" "$st/usr/lib/lua/simple-uci.lua"
install -D -m644 "$src/gluon-packages/admin/pretty-hostname/files/pretty_hostname.lua" "$st/usr/lib/lua/pretty_hostname.lua"
install -D -m755 "$src/gluon-packages/admin/pretty-hostname/files/pretty-hostname" "$st/usr/bin/pretty-hostname"

# respondd (what the map and the status page read) with Gluon's own providers, gluon-neighbour-info
# (the status page's client of it), and gluon-web (Config Mode and the status page: the Lua web
# framework and its C template parser; gluon-po2lmo, its host tool, compiles packages' .po files).
cm respondd gluon-packages/net/respondd/src
XCFLAGS="-I$bld/iwinfo/include" mk gluon-respondd gluon/package/gluon-respondd/src LDLIBS="-ljson-c"
install -D -m755 "$bld/gluon-respondd/respondd.so" "$st/usr/lib/respondd/gluon-respondd.so"
mk gluon-neighbour-info gluon/package/gluon-neighbour-info/src
install -D -m755 "$bld/gluon-neighbour-info/gluon-neighbour-info" "$st/usr/bin/gluon-neighbour-info"
mk gluon-web gluon/package/gluon-web/src compile
install -D -m755 "$bld/gluon-web/parser.so" "$st/usr/lib/lua/gluon/web/template/parser.so"
make -C "$bld/gluon-web" CFLAGS="-O2" gluon-po2lmo >> "$log" 2>&1
# the autoupdater's hook runner (its run_dir(), lab shim: README.md) and gluon-autoupdater's
# library of the hooks (stop, start_enabled) with its own hooks
gcc -O2 -Wall -I"$src/gluon-packages/admin/autoupdater/src" -o "$st/usr/sbin/autoupdater-run-dir" \
	"$here/shims/autoupdater-run-dir.c" "$src/gluon-packages/admin/autoupdater/src/util.c" >> "$log" 2>&1
install -D -m755 "$bld/gluon-web/gluon-po2lmo" "$dir/host/bin/gluon-po2lmo"

tree() { put_tree "$1" "$st"; }
# OpenWrt's own scripts, where their package Makefiles install them.
ow=$src/openwrt-files/package
tree "$ow/base-files/files"
# base-files' Makefile puts the target's PATH where its files say %PATH%
for f in etc/profile etc/preinit usr/sbin/hotplug-call; do
	sed -i 's,%PATH%,/usr/sbin:/usr/bin:/sbin:/bin,g' "$st/$f"
done
install -D -m644 "$ow/system/procd/files/procd.sh" "$(node_path "$st" /lib/functions/procd.sh)"
install -D -m755 "$ow/system/procd/files/reload_config" "$(node_path "$st" /sbin/reload_config)"
install -D -m755 "$ow/system/procd/files/service" "$(node_path "$st" /sbin/service)"
install -D -m644 "$ow/system/procd/files/hotplug.json" "$st/etc/hotplug.json"
install -D -m644 "$ow/system/procd/files/hotplug-preinit.json" "$st/etc/hotplug-preinit.json"
install -D -m644 "$ow/system/uci/files/lib/config/uci.sh" "$(node_path "$st" /lib/config/uci.sh)"
install -D -m644 "$ow/network/config/firewall/files/firewall.config" "$st/etc/config/firewall"
install -D -m755 "$ow/network/config/firewall/files/firewall.init" "$st/etc/init.d/firewall"
install -D -m644 "$ow/network/config/firewall/files/firewall.hotplug" "$st/etc/hotplug.d/iface/20-firewall"
printf '# This file is interpreted as shell script.\n' > "$st/etc/firewall.user"
tree "$ow/network/config/netifd/files"
install -D -m755 "$ow/system/ubox/files/log.init" "$st/etc/init.d/log"
install -D -m755 "$ow/utils/busybox/files/sysntpd" "$st/etc/init.d/sysntpd"
install -D -m755 "$ow/network/services/dnsmasq/files/dnsmasq.init" "$st/etc/init.d/dnsmasq"
install -D -m644 "$ow/network/services/dnsmasq/files/dhcp.conf" "$st/etc/config/dhcp"
install -D -m644 "$ow/network/services/dnsmasq/files/dnsmasq.conf" "$st/etc/dnsmasq.conf"
install -D -m755 "$ow/network/services/dnsmasq/files/dhcp-script.sh" "$st/usr/lib/dnsmasq/dhcp-script.sh"
install -D -m644 "$ow/network/services/dnsmasq/files/dhcpbogushostname.conf" "$st/usr/share/dnsmasq/dhcpbogushostname.conf"
install -D -m644 "$ow/network/services/dnsmasq/files/rfc6761.conf" "$st/usr/share/dnsmasq/rfc6761.conf"
install -D -m644 "$ow/network/services/dnsmasq/files/dnsmasq_acl.json" "$st/usr/share/acl.d/dnsmasq_acl.json"
for f in "$src"/netifd/scripts/*.sh; do install -D -m644 "$f" "$(node_path "$st" /lib/netifd/"$(basename "$f")")"; done
# Gluon's packages that a Babel node runs (gluon-core, client bridge, layer-3 mesh, Babel; the C
# l3roamd's Gluon glue is installed per node by the lab when a node runs it).
# Gluon's respondd glue, gluon-web with Config Mode's core and Advanced settings, and the status page.
tree "$src/gluon/package/gluon-autoupdater/files"
webpkgs="gluon-respondd gluon-web gluon-web-model gluon-web-admin gluon-config-mode-core gluon-config-mode-theme gluon-status-page"
for p in gluon-core gluon-client-bridge gluon-mesh-layer3-common gluon-mesh-babel $webpkgs; do
	for sub in files luasrc; do
		[ -d "$src/gluon/package/$p/$sub" ] && tree "$src/gluon/package/$p/$sub"
	done
done
# what those packages' install steps add (their Makefiles): links into gluon-web, the
# status page's script, the translations (English and German, as a German community's image has)
mkdir -p "$st/usr/lib/gluon/config-mode/view" "$st/usr/lib/gluon/config-mode/www/static" "$st/usr/lib/gluon/status-page/view" "$st/usr/lib/gluon/web/i18n"
ln -sfn /lib/gluon/web/i18n "$st/usr/lib/gluon/config-mode/i18n"
ln -sfn /lib/gluon/web/i18n "$st/usr/lib/gluon/status-page/i18n"
ln -sfn /lib/gluon/web/view/error "$st/usr/lib/gluon/config-mode/view/error"
ln -sfn /lib/gluon/web/view/model "$st/usr/lib/gluon/config-mode/view/model"
ln -sfn /lib/gluon/web/view/error "$st/usr/lib/gluon/status-page/view/error"
install -D -m644 "$src/gluon/package/gluon-status-page/javascript/status-page.js" "$st/usr/lib/gluon/status-page/www/static/status-page.js"
for p in $webpkgs; do
	[ -f "$src/gluon/package/$p/i18n/de.po" ] &&
		"$dir/host/bin/gluon-po2lmo" "$src/gluon/package/$p/i18n/de.po" "$st/usr/lib/gluon/web/i18n/$p.de.lmo"
done
echo v2023.2.6 > "$st/usr/lib/gluon/gluon-version"
echo lab > "$st/usr/lib/gluon/release"

mkdir -p "$st/etc/rc.d" "$st/etc/config" "$st/etc/uci-defaults" "$st/etc/board.d" "$st/usr/sbin" "$st/usr/bin"
ln -sfn ../bin/uci "$st/usr/sbin/uci"
# OpenWrt's /bin/sh is BusyBox ash (local, let, ${x//}): Debian's busybox, from its package.
ln -sfn /bin/busybox "$st/usr/bin/sh"
ln -sfn /bin/busybox "$st/usr/bin/ash"
ln -sfn /bin/busybox "$st/usr/sbin/udhcpc"
install -D -m644 "$here/shims/lua/posix/glob.lua" "$st/usr/lib/lua/posix/glob.lua"
# Lab shims (README.md): the host's kernel and devices are shared, a node must not touch them.
printf '#!/bin/sh\n# lab shim: a node never loads modules into the shared kernel\nexit 0\n' > "$st/usr/sbin/kmodloader"
printf '#!/bin/sh\n# lab shim: no coldplug of the host'"'"'s devices from a node\nexit 0\n' > "$st/usr/sbin/udevtrigger"
printf '#!/bin/sh\n# lab shim: a node'"'"'s root is the lab'"'"'s overlay, not a flash partition (fstools)\nexit 0\n' > "$st/usr/sbin/mount_root"
# (Debian's busybox has no ntpd applet; a node must not set the shared clock anyway)
printf '#!/bin/sh\n# lab shim: a node never sets the host'"'"'s clock\nexec sleep 2147483647\n' > "$st/usr/sbin/ntpd"
chmod 755 "$st/usr/sbin/kmodloader" "$st/usr/sbin/udevtrigger" "$st/usr/sbin/mount_root" "$st/usr/sbin/ntpd"
touch "$st/.built-$stamp"
echo "built the Gluon node userland into $st"

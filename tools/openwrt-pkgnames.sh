#!/usr/bin/env bash
# openwrt-pkgnames.sh GIT_DIR COMMIT | openwrt-pkgnames.sh SOURCE_DIR
# The names of the packages that the package Makefiles of an OpenWrt feed
# (openwrt/packages, openwrt/routing, freifunk-gluon/packages, Gluon's
# package/) define, at COMMIT of a git mirror or in an unpacked source tree,
# one a line: every BuildPackage / BuildPackageGluon name and kmod-<name> of
# every KernelPackage, with $(PKG_NAME) resolved from the same Makefile.
# Makes packages/testdata/openwrt-packages/*.txt (see its README).
set -euo pipefail
names() {
	awk '
		/^PKG_NAME[ \t]*:?=/ { sub(/^PKG_NAME[ \t]*:?=[ \t]*/, ""); pkg = $0 }
		match($0, /call (BuildPackage|BuildPackageGluon|KernelPackage),[^)]*\)/) {
			s = substr($0, RSTART, RLENGTH)
			kmod = (s ~ /KernelPackage/)
			sub(/^call [A-Za-z]+,/, "", s); sub(/\)$/, "", s)
			gsub(/\$\(PKG_NAME\)/, pkg, s)
			if (s ~ /\$/) next  # made from other variables: not resolved here
			print (kmod ? "kmod-" : "") s
		}'
}
pattern='call (BuildPackage|BuildPackageGluon|KernelPackage),'
if [ $# -eq 2 ]; then
	git --git-dir="$1" grep -l -E "$pattern" "$2" -- '*Makefile' '*.mk' | while IFS= read -r hit; do
		git --git-dir="$1" show "$2:${hit#*:}" | names
	done
else
	grep -rlE --include=Makefile --include='*.mk' "$pattern" "$1" | while IFS= read -r f; do names < "$f"; done
fi | sort -u

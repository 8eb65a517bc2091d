#!/usr/bin/env bash
# fetch.sh NAME DEST: the pinned sources NAME (see PINS) unpacked into DEST,
# without the archive's top folder. From $UPSTREAM_CACHE/NAME.tar.gz when
# set, checked against the pinned sha256; otherwise fetched from the public
# repository at the pinned commit with git (which checks the commit's hash).
set -euo pipefail
here=$(dirname "$(readlink -f "$0")")
name=$1 dest=$2
read -r _ repo commit sum paths < <(awk -v n="$name" '$1 == n' "$here/PINS") || { echo "fetch.sh: no pin named $name in $here/PINS" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -n "${UPSTREAM_CACHE:-}" ]; then
	tarball=$UPSTREAM_CACHE/$name.tar.gz
	echo "$sum  $tarball" | sha256sum -c --quiet - >&2 || { echo "fetch.sh: $tarball is not the pinned $repo $commit" >&2; exit 1; }
else
	git init -q --bare "$tmp/git"
	git --git-dir="$tmp/git" fetch -q --filter=blob:none "https://github.com/$repo.git" "+refs/heads/*:refs/heads/*" "+refs/tags/*:refs/tags/*"
	tarball=$tmp/$name.tar.gz
	# shellcheck disable=SC2086 # paths are glob pathspecs, one word each
	git --git-dir="$tmp/git" archive --format=tar.gz -o "$tarball" "$commit" ${paths:+$(printf ":(glob)%s " $paths)}
fi
mkdir -p "$tmp/x" "$dest"
tar -xzf "$tarball" -C "$tmp/x"
# strip the one top folder some archives have (babeld/, l3roamd/, ...)
src=$tmp/x
if [ "$(find "$src" -mindepth 1 -maxdepth 1 | wc -l)" = 1 ] && [ -d "$(find "$src" -mindepth 1 -maxdepth 1)" ]; then
	src=$(find "$src" -mindepth 1 -maxdepth 1)
fi
cp -a "$src/." "$dest/"

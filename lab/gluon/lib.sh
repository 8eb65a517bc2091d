# shellcheck shell=bash
# Shared by build.sh and image.sh: where a file of a node's / lies in a
# tree laid out as the node's root on Debian's merged /usr.

# node_path ROOT P: the place of the node's P in ROOT (/lib, /sbin, /bin are in /usr).
node_path() { case $2 in /lib/* | /sbin/* | /bin/*) echo "$1/usr$2" ;; *) echo "$1$2" ;; esac; }

# put_tree DIR ROOT: copies a package's files/ or luasrc/ tree onto ROOT, as
# OpenWrt's and Gluon's install steps put it on a node.
put_tree() {
	(cd "$1" && find . ! -type d) | while IFS= read -r f; do
		f=${f#./}
		local to
		to=$(node_path "$2" "/$f")
		mkdir -p "$(dirname "$to")"
		cp -a "$1/$f" "$to"
	done
}

#!/usr/bin/env bash
# node.sh: a Gluon node of the lab, booted as a router boots: procd as PID 1
# in its own pid, mount, uts and ipc namespaces, inside a network namespace
# the caller made (with its links), running OpenWrt's init scripts and
# Gluon's upgrade scripts from its image.
#
#   node.sh start NODEDIR NETNS NAME IMAGE STAGING   boot; returns once PID 1 runs
#   node.sh exec  NODEDIR CMD...                    run CMD on the node (as `ssh root@node CMD`)
#   node.sh stop  NODEDIR                           end the node (its pid namespace, with it every process)
#
# The node's / is a tmpfs in the node's own mount namespace: /usr and /etc
# are overlays of IMAGE (what this lab's image holds: the packages, site.json,
# the board) over STAGING (build.sh) over the host's /usr and a few files of
# its /etc (the loader's cache, so Debian's binaries run); what the node
# writes lands in NODEDIR/upper. No mount is made in the host's namespace.
set -euo pipefail
here=$(dirname "$(readlink -f "$0")")
cmd=$1 nd=$2
shift 2
case $cmd in
start)
	netns=$1 name=$2 image=$3 staging=$4
	rm -rf "$nd"
	mkdir -p "$nd"/upper/usr "$nd"/upper/etc "$nd"/work/usr "$nd"/work/etc "$nd"/root "$nd"/base-etc
	# What Debian's binaries need of /etc, and iptables as Gluon has it: the legacy backend.
	cp -a /etc/ld.so.cache /etc/ld.so.conf /etc/ld.so.conf.d /etc/nsswitch.conf /etc/ethertypes /etc/alternatives "$nd/base-etc/"
	for t in iptables ip6tables; do
		for s in "" -save -restore; do
			ln -sfn "/usr/sbin/$t-legacy$s" "$nd/base-etc/alternatives/$t$s"
		done
	done
	ln -sfn /usr/bin/gawk "$nd/base-etc/alternatives/awk"
	: > "$nd/console.log"
	setsid ip netns exec "$netns" unshare --mount --pid --uts --ipc --fork --propagation private \
		"$here/node-init.sh" "$nd" "$name" "$image" "$staging" > "$nd/init.log" 2>&1 < /dev/null &
	up=$!
	for _ in $(seq 100); do
		pid1=$(pgrep -P "$up" | head -1 || true)
		[ -n "$pid1" ] && break
		sleep 0.05
	done
	[ -n "${pid1:-}" ] || { cat "$nd/init.log" >&2; echo "node.sh: $name did not start" >&2; exit 1; }
	echo "$pid1" > "$nd/pid1"
	;;
exec)
	pid1=$(cat "$nd/pid1")
	exec nsenter -t "$pid1" -m -p -u -i -n -r -w /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb \
		"LUA_PATH=/usr/lib/lua/?.lua;/usr/lib/lua/?/init.lua;/usr/share/lua/5.1/?.lua;/usr/share/lua/5.1/?/init.lua" \
		"LUA_CPATH=/usr/lib/lua/?.so;/usr/lib/x86_64-linux-gnu/lua/5.1/?.so" "$@"
	;;
stop)
	if [ -f "$nd/pid1" ]; then
		pid1=$(cat "$nd/pid1")
		kill -9 "$pid1" 2>/dev/null || true
		# the pid namespace ends with its PID 1; wait until its last process is gone
		for _ in $(seq 100); do
			kill -0 "$pid1" 2>/dev/null || break
			sleep 0.05
		done
		rm -f "$nd/pid1"
	fi
	;;
*)
	echo "usage: node.sh start|exec|stop NODEDIR ..." >&2
	exit 2
	;;
esac

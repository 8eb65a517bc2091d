#!/usr/bin/env bash
# node-init.sh NODEDIR NAME IMAGE STAGING: PID 1 of a new pid and mount
# namespace (node.sh start): lays out the node's / and becomes procd.
set -euo pipefail
nd=$1 name=$2 image=$3 staging=$4
r=$nd/root
mount -t tmpfs -o mode=755 root "$r"
mkdir -p "$r"/usr "$r"/etc "$r"/proc "$r"/sys "$r"/dev "$r"/tmp "$r"/root "$r"/overlay
for l in bin sbin lib lib64; do ln -s "usr/$l" "$r/$l"; done
ln -s tmp "$r/var"
# Debian's iptables takes its lock at /run/xtables.lock, OpenWrt's at /var/run
ln -s tmp/run "$r/run"
mount -t overlay overlay -o "lowerdir=$image/usr:$staging/usr:/usr,upperdir=$nd/upper/usr,workdir=$nd/work/usr" "$r/usr"
mount -t overlay overlay -o "lowerdir=$image/etc:$staging/etc:$nd/base-etc,upperdir=$nd/upper/etc,workdir=$nd/work/etc" "$r/etc"
mount -t tmpfs -o mode=1777,nosuid,nodev tmp "$r/tmp"
# What a router's /sbin/init leaves before it starts procd (procd's early()
# and the x86 target's preinit, 02_sysinfo): the lab starts procd directly.
mkdir -p "$r"/tmp/run "$r"/tmp/lock "$r"/tmp/state "$r"/tmp/shm "$r"/tmp/sysinfo
echo "gluon-464xlat lab node" > "$r/tmp/sysinfo/model"
echo "lab,gluon-464xlat-node" > "$r/tmp/sysinfo/board_name"
mount -t proc proc "$r/proc"
# /proc/kmsg is the host's kernel log, one for every node: each node's logd
# reads it (ubox's log/syslog.c, O_NONBLOCK), and when several wake for the
# same message, the one that loses the race blocks in the kernel's read
# (kmsg_read checks for unread messages, then reads) until the next kernel
# message; meanwhile its /dev/log fills, and netifd, procd and every
# logger block writing to it: the lab's "init did not complete" stalls
# (seen with netifd, hotplug-call and logger all in unix_wait_for_peer and
# logd in syslog_print). A node's logd reads nothing instead.
mount --bind /dev/null "$r/proc/kmsg"
# sysfs of the node's own network namespace (its /sys/class/net)
mount -t sysfs sysfs "$r/sys"
mount -t tmpfs -o mode=755,size=512k dev "$r/dev"
for d in null zero full random urandom tty; do
	touch "$r/dev/$d"
	mount --bind "/dev/$d" "$r/dev/$d"
done
# /dev/net/tun: the daemons' TUN devices (created in the node's network namespace)
mkdir -p "$r/dev/net"
touch "$r/dev/net/tun"
mount --bind /dev/net/tun "$r/dev/net/tun"
# the console and the kernel log of a router: files the lab reads
touch "$r/dev/console" "$r/dev/kmsg"
mount --bind "$nd/console.log" "$r/dev/console"
mkdir -p "$r/dev/pts"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$r/dev/pts"
ln -s pts/ptmx "$r/dev/ptmx"
ln -s /proc/self/fd "$r/dev/fd"
# The host's kernel may have br_netfilter loaded; a Gluon image has no
# kmod-br-netfilter, so its bridges' frames never pass through iptables.
for f in /proc/sys/net/bridge/bridge-nf-call-iptables /proc/sys/net/bridge/bridge-nf-call-ip6tables \
	/proc/sys/net/bridge/bridge-nf-call-arptables; do
	[ -e "$f" ] && echo 0 > "$f"
done
hostname "$name"
cd "$r"
# Debian's lua5.1 looks for modules where OpenWrt's looks: /usr/lib/lua.
# container: procd's own container mode (is_container()): it leaves /dev, /proc and /sys
# as this script laid them out instead of mounting the host's devices.
exec chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb container=gluon-464xlat-lab \
	"LUA_PATH=/usr/lib/lua/?.lua;/usr/lib/lua/?/init.lua;/usr/share/lua/5.1/?.lua;/usr/share/lua/5.1/?/init.lua" \
	"LUA_CPATH=/usr/lib/lua/?.so;/usr/lib/x86_64-linux-gnu/lua/5.1/?.so" /sbin/procd -S

#!/bin/sh
# Lab stand-in (lab/gluon/README.md) for the netifd protocol handler of
# OpenWrt's vxlan package, whose source is not in the lab's offline cache:
# proto vxlan6 as Gluon's gluon_wired uses it (a VXLAN over the link-local
# address of a wired mesh port, multicast peer, VNI from the domain seed).
# It makes the device with iproute2 instead of through netifd's tunnel
# handler; the device, its name, MAC, VNI, group and port are the same.
# shellcheck disable=SC2034,SC1091,SC3043

. /lib/functions.sh
. /lib/functions/network.sh
. ../netifd-proto.sh
init_proto "$@"

proto_vxlan6_init_config() {
	no_device=1
	available=1
	proto_config_add_string ip6addr
	proto_config_add_string peer6addr
	proto_config_add_string tunlink
	proto_config_add_int vid
	proto_config_add_int port
	proto_config_add_string macaddr
	proto_config_add_boolean rxcsum
	proto_config_add_boolean txcsum
}

proto_vxlan6_setup() {
	local cfg="$1" ip6addr peer6addr tunlink vid port macaddr dev
	json_get_vars ip6addr peer6addr tunlink vid port macaddr
	network_get_device dev "$tunlink" || dev="$tunlink"
	ip link del "$cfg" 2> /dev/null
	if ! ip link add "$cfg" type vxlan id "${vid:-0}" local "$ip6addr" group "$peer6addr" dev "$dev" \
		dstport "${port:-4789}" udp6zerocsumtx udp6zerocsumrx; then
		proto_notify_error "$cfg" VXLAN_CREATE_FAILED
		proto_block_restart "$cfg"
		return 1
	fi
	[ -n "$macaddr" ] && ip link set "$cfg" address "$macaddr"
	ip link set "$cfg" up
	proto_init_update "$cfg" 1
	proto_send_update "$cfg"
}

proto_vxlan6_teardown() {
	ip link del "$1" 2> /dev/null
}

add_protocol vxlan6

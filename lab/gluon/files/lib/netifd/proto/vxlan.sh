#!/bin/sh
# Lab stand-in (lab/gluon/README.md) for the netifd protocol handler of
# OpenWrt's vxlan package, whose source is not in the lab's offline cache:
# proto vxlan6 as Gluon's gluon_wired uses it (a VXLAN over the link-local
# address of a wired mesh port, multicast peer, VNI from the domain seed).
#
# Like OpenWrt's handler it only describes the tunnel: netifd's own tunnel
# code (system_add_vxlan) makes the device, and the interface depends on its
# tunlink interface, so netifd sets it up again whenever the mesh port's
# interface comes back (a link that flaps while a node boots). A handler
# that makes the device itself and gives up on an error leaves the node
# without its mesh for good: an earlier version of this file did, in about
# one boot in ten.
# shellcheck disable=SC2034,SC1091,SC3043

. /lib/functions.sh
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
	local cfg="$1" ip6addr peer6addr tunlink vid port macaddr rxcsum txcsum
	json_get_vars ip6addr peer6addr tunlink vid port macaddr rxcsum txcsum

	# set up again when the tunlink interface comes (back) up
	( proto_add_host_dependency "$cfg" '' "$tunlink" )

	if [ -z "$ip6addr" ] || [ -z "$peer6addr" ]; then
		proto_notify_error "$cfg" MISSING_ADDRESS
		exit
	fi

	proto_init_update "$cfg" 1
	proto_add_tunnel
	json_add_string mode vxlan6
	json_add_string link "$tunlink"
	json_add_string local "$ip6addr"
	json_add_string remote "$peer6addr"
	json_add_object data
	[ -n "$vid" ] && json_add_int id "$vid"
	[ -n "$port" ] && json_add_int port "$port"
	[ -n "$macaddr" ] && json_add_string macaddr "$macaddr"
	[ -n "$rxcsum" ] && json_add_boolean rxcsum "$rxcsum"
	[ -n "$txcsum" ] && json_add_boolean txcsum "$txcsum"
	json_close_object
	proto_close_tunnel
	proto_send_update "$cfg"
}

# netifd removes the tunnel device itself
proto_vxlan6_teardown() {
	:
}

add_protocol vxlan6

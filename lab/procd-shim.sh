#!/bin/sh
# procd-shim.sh INIT_SCRIPT UCI_STATE OUT: runs an OpenWrt procd init
# script's start_service on a machine without OpenWrt and writes the
# command it would start to OUT, one argument per line (nothing when the
# service is disabled). UCI_STATE is `uci show` output. The package tests
# use it to check init script -> flags -> daemon; the lab starts the
# daemons from the same init scripts through it.
# rc.common and functions.sh are stood in for by the few calls the
# scripts make; busybox ash and dash both run this.
# shellcheck disable=SC2034,SC1090

init=$1 UCI_STATE=$2 PROCD_OUT=$3
: > "$PROCD_OUT"

config_load() { _cfg=$1; }
config_get() { # var section option [default]
	_v=$(sed -n "s/^$_cfg\\.$2\\.$3='\\(.*\\)'\$/\\1/p" "$UCI_STATE")
	[ -n "$_v" ] || _v=$4
	eval "$1=\$_v"
}
config_get_bool() {
	config_get "$@"
	case $(eval "echo \"\$$1\"") in
	1 | on | true | yes | enabled) eval "$1=1" ;;
	*) eval "$1=0" ;;
	esac
}
config_list_foreach() { # section option function: once per list value
	_fn=$3
	_l=$(sed -n "s/^$_cfg\\.$1\\.$2=\\(.*\\)\$/\\1/p" "$UCI_STATE")
	eval "set -- $_l"
	for _x; do "$_fn" "$_x"; done
}
logger() { echo "logger: $*" >&2; }
procd_open_instance() { :; }
procd_close_instance() { :; }
procd_set_param() {
	[ "$1" = command ] || return 0
	shift
	printf '%s\n' "$@" > "$PROCD_OUT"
}
procd_append_param() {
	[ "$1" = command ] || return 0
	shift
	printf '%s\n' "$@" >> "$PROCD_OUT"
}
procd_add_reload_trigger() { :; }

. "$init"
start_service

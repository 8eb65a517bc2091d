# shellcheck shell=bash
# Shared by the lab scripts: a client, a node (the CLAT), and an IPv6 side
# whose server owns PLAT::198.51.100.1. Source it after setting P (a unique
# namespace prefix).
CLAT=fddd:1337:1337:1234:5678:9abc
PLAT=fddd:1337:1338:1234:5678:9abc
C=$P-c N=$P-n S=$P-s

# ns_add NS...: fresh namespaces with loopback up and no duplicate address
# detection (on fresh veths it holds packets for about 2 s).
ns_add() {
  for ns; do
    ip netns add "$ns"; ip -n "$ns" link set lo up
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
  done
}

# ns_del NS...: stop what runs in the namespaces (TERM, then KILL) and delete them.
ns_del() {
  for ns; do ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true; done
  sleep 0.2
  for ns; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
}

lab_cleanup() { ns_del $C $N $S; }

# lab_topology kernel|xlat: client -- node -- server, IPv4 forwarding
# (kernel) or IPv6 between node and server (xlat).
lab_topology() {
  lab_cleanup
  ns_add $C $N $S
  ip link add ${P}a netns $C type veth peer name ${P}b netns $N
  ip link add ${P}c netns $N type veth peer name ${P}d netns $S
  ip -n $C link set ${P}a name c0 up; ip -n $N link set ${P}b name n0 up
  ip -n $N link set ${P}c name n1 up; ip -n $S link set ${P}d name s0 up
  ip netns exec $N sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
  ip -n $C addr add 10.130.0.10/16 dev c0
  ip -n $C route add default via 10.130.0.1
  ip -n $N addr add 10.130.0.1/16 dev n0
  if [ "$1" = kernel ]; then
    ip -n $N addr add 198.51.100.254/24 dev n1
    ip -n $S addr add 198.51.100.1/24 dev s0
    ip -n $S route add 10.130.0.0/16 via 198.51.100.254
  else
    ip -n $N addr add fd00:1::1/64 dev n1 nodad
    ip -n $N route add $PLAT::/96 via fd00:1::2
    ip -n $S addr add fd00:1::2/64 dev s0 nodad
    ip -n $S addr add $PLAT:c633:6401/128 dev lo
    ip -n $S route add $CLAT::/96 via fd00:1::1 src $PLAT:c633:6401
  fi
}

# start_clatd SOCKET [FLAG...]: clatd on the node with the flags the init
# script uses, and FLAGs.
start_clatd() {
  local sock=$1; shift
  ip netns exec $N "$BIN/clatd" -clat-prefix $CLAT::/96 -plat-prefix $PLAT::/96 \
    -client-net 10.130.0.0/16 -client-dev n0 -socket "$sock" -log-level warn "$@" &
  disown
  for _ in $(seq 50); do [ -S "$sock" ] && return 0; sleep 0.1; done
  echo "clatd did not start" >&2; return 1
}

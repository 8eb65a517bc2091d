#!/usr/bin/env bash
# bench-plat: an IPv6 host in clat_range -> exit node -> IPv4 server, for
# (a) the kernel's own IPv6 forwarding (the server has IPv6 too), (b) TAYGA as
# NAT64 (dynamic pool + iptables masquerade), (c) platd: TCP Gbit/s (1 and 4
# streams, median of RUNS), new UDP sessions/s, then 100 000 concurrent UDP
# sessions through platd and its RSS. Needs root, iperf3, tayga, iptables.
set -euo pipefail
BIN=${BIN:-bin}
SECS=${SECS:-5}
RUNS=${RUNS:-3}
SESSIONS=${SESSIONS:-100000}
P=pb$$
H=$P-h X=$P-x I=$P-i
SRC6=fddd:1337:1337:ffff::1
. "$(dirname "$0")/lib.sh"
cleanup() { ns_del $H $X $I; rm -rf /tmp/$P-*; }
trap cleanup EXIT INT TERM

topology() {
  cleanup
  ns_add $H $X $I
  ip link add ${P}a netns $H type veth peer name ${P}b netns $X
  ip link add ${P}c netns $X type veth peer name ${P}d netns $I
  ip -n $H link set ${P}a name h0 up; ip -n $X link set ${P}b name x0 up
  ip -n $X link set ${P}c name wan0 up; ip -n $I link set ${P}d name i0 up
  ip netns exec $X sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
  ip -n $H addr add fd00:1::2/64 dev h0
  ip -n $H addr add $SRC6/128 dev lo
  ip -n $H route add default via fd00:1::1 src $SRC6
  ip -n $X addr add fd00:1::1/64 dev x0
  ip -n $X route add fddd:1337:1337::/48 via fd00:1::2
  ip -n $X addr add 198.51.100.254/24 dev wan0
  ip -n $X addr add fd00:2::1/64 dev wan0
  ip -n $I addr add 198.51.100.1/24 dev i0
  ip -n $I addr add fd00:2::2/64 dev i0
  ip -n $I route add fddd:1337:1337::/48 via fd00:2::1
  # The server ignores the session-filling datagrams instead of answering
  # each with a port unreachable.
  ip netns exec $I nft -f - <<'EOT'
table inet sink {
	chain in { type filter hook input priority 0; udp dport 20000-65535 drop; }
}
EOT
  ip netns exec $I "$BIN/traffic" udp-echo "[::]:5002" 16 >/dev/null 2>&1 &
  disown
  sleep 0.3
}

iperf1() { # $1 target, $2 streams
  ip netns exec $I iperf3 -s -1 -D -p 5201 >/dev/null 2>&1 || true
  sleep 0.5
  ip netns exec $H iperf3 -c "$1" -p 5201 -t "$SECS" -P "$2" -J 2>/dev/null |
    python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))'
  pkill -f "iperf3 -s -1 -D -p 5201" 2>/dev/null || true
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
iperf() { for _ in $(seq "$RUNS"); do iperf1 "$1" "$2"; done | median; }

measure() { # $1 name, $2 target address
  local one four nss
  one=$(iperf "$2" 1); four=$(iperf "$2" 4)
  # New sessions spread over 16 server ports, as real traffic spreads over
  # servers: one (address, port) pair alone is capped at platd's port range.
  nss=$(ip netns exec $H "$BIN/traffic" new-sessions "[$2]:5002" 20000 64 16 | sed -n 's/sessions_per_s=\([0-9]*\).*/\1/p')
  printf '%-8s 1 stream %6s Gbit/s   4 streams %6s Gbit/s   new UDP sessions %7s /s\n' "$1" "$one" "$four" "$nss" >&2
  echo "$one $nss"
}

topology
read -r kernel kernel_nss < <(measure kernel fd00:2::2)

topology
mkdir -p /tmp/$P-tayga
cat > /tmp/$P-tayga.conf <<EOT
tun-device nat64
ipv4-addr 192.168.255.1
prefix $PLAT::/96
dynamic-pool 192.168.255.0/24
data-dir /tmp/$P-tayga
EOT
ip netns exec $X tayga -c /tmp/$P-tayga.conf --mktun >/dev/null
ip -n $X link set nat64 up
ip -n $X route add $PLAT::/96 dev nat64
ip -n $X route add 192.168.255.0/24 dev nat64
ip netns exec $X iptables -t nat -A POSTROUTING -s 192.168.255.0/24 -o wan0 -j MASQUERADE
ip netns exec $X tayga -c /tmp/$P-tayga.conf --nodetach >/dev/null 2>&1 &
disown
sleep 0.5
read -r tayga tayga_nss < <(measure tayga $PLAT:c633:6401)

topology
ip netns exec $X "$BIN/platd" -plat-prefix $PLAT::/96 -clat-range fddd:1337:1337::/48 -wan-dev wan0 \
  -allow 198.51.100.0/24 -socket /tmp/$P-platd.sock -log-level warn &
disown
for _ in $(seq 50); do [ -S /tmp/$P-platd.sock ] && break; sleep 0.1; done
read -r plat plat_nss < <(measure platd $PLAT:c633:6401)

# 100 000 concurrent UDP sessions (UDP conntrack entries live 30 s unreplied).
pid=$(pgrep -f "$BIN/platd -plat-prefix $PLAT" | head -1)
rss0=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
before=$(ip netns exec $X cat /proc/sys/net/netfilter/nf_conntrack_count)
ip netns exec $H "$BIN/traffic" udp-blast $SRC6 $PLAT:c633:6401 "$SESSIONS" >/dev/null
sleep 2
entries=$(( $(ip netns exec $X cat /proc/sys/net/netfilter/nf_conntrack_count) - before ))
ip netns exec $X sh -c "echo status | nc -NU /tmp/$P-platd.sock" > /tmp/$P-status.json
rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
printf 'platd    %d UDP flows sent: %d new conntrack entries (2 per session), RSS %d KiB before, %d KiB holding them (after a status call)\n' \
  "$SESSIONS" "$entries" "$rss0" "$rss" >&2

ratio() { python3 -c "print('%.2f' % ($1/$2 if $2 > 0 else 0))"; }
echo "bench-plat: sessions_per_s plat=$plat_nss tayga=$tayga_nss kernel=$kernel_nss; udp_sessions=$((entries / 2)) rss_kib=$rss"
echo "bench-plat: plat=$plat tayga=$tayga kernel=$kernel vs_tayga=$(ratio "$plat" "$tayga") vs_kernel=$(ratio "$plat" "$kernel")"

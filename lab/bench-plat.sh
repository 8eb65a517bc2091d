#!/usr/bin/env bash
# bench-plat: an IPv6 host in clat_range -> exit node -> IPv4 server, for
# (a) the kernel's own IPv6 forwarding (the server has IPv6 too), (a') the
# same with conntrack (a stateful firewall, as fw3/fw4 make every OpenWrt
# router: one conntrack entry per session), (b) TAYGA as NAT64 (dynamic pool
# + iptables masquerade), (c) platd. Each figure is the median of RUNS rounds
# that take the systems in turn, so a slow moment of this VM does not fall on
# one of them only:
#  * TCP Gbit/s, 1 and 4 streams;
#  * new UDP sessions/s: a flood of first datagrams of new flows (raw socket,
#    sendmmsg), each a session to set up, counted where the server receives
#    them: the translator's limit, not the sender's. The kernel's figure for
#    the ratio is (a'): a stateless forwarder sets up no session;
#  * CPU time of the whole machine (/proc/stat) per session at a fixed rate
#    that all of them sustain (PACE/s);
#  * request/response exchanges/s, a socket each (the figure this bench
#    printed first): it measures the sender as much as the translator, half
#    of this 2-core machine idles meanwhile;
# then 100 000 concurrent UDP sessions through platd and its RSS. Needs root,
# iperf3, tayga, iptables.
set -euo pipefail
BIN=${BIN:-bin}
SECS=${SECS:-5}
RUNS=${RUNS:-3}
SESSIONS=${SESSIONS:-100000}
NEW=${NEW:-12000} # exchanges per round (16 server ports: RUNS rounds stay well below platd's per-destination limit)
FLOOD=${FLOOD:-50000} # sessions per flood round (16 server ports, the table emptied before each round)
PACE=${PACE:-40000}   # sessions/s of the rounds that measure CPU time
P=pb$$
SRC6=fddd:1337:1337:ffff::1
. "$(dirname "$0")/lib.sh"
ALL=()
cleanup() { ns_del "${ALL[@]}"; rm -rf /tmp/$P-*; }
trap cleanup EXIT INT TERM

topology() { # $1: a suffix; the three namespaces are $P$1-h, -x, -i
  local H=$P$1-h X=$P$1-x I=$P$1-i
  ALL+=("$H" "$X" "$I")
  ns_add $H $X $I
  ip link add $P$1a netns $H type veth peer name $P$1b netns $X
  ip link add $P$1c netns $X type veth peer name $P$1d netns $I
  ip -n $H link set $P$1a name h0 up; ip -n $X link set $P$1b name x0 up
  ip -n $X link set $P$1c name wan0 up; ip -n $I link set $P$1d name i0 up
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
	counter sessions {}
	chain in { type filter hook input priority 0; udp dport 20000-65535 counter name sessions drop; }
}
EOT
  ip netns exec $I "$BIN/traffic" udp-echo "[::]:5002" 16 >/dev/null 2>&1 &
  disown
}

iperf1() { # $1 suffix, $2 target, $3 streams
  ip netns exec $P$1-i iperf3 -s -1 -D -p 5201 >/dev/null 2>&1 || true
  sleep 0.5
  ip netns exec $P$1-h iperf3 -c "$2" -p 5201 -t "$SECS" -P "$3" -J 2>/dev/null |
    python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))'
  ip netns pids $P$1-i | xargs -r ps -o pid=,args= -p 2>/dev/null | awk '/iperf3/ {print $1}' | xargs -r kill 2>/dev/null || true
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
iperf() { for _ in $(seq "$RUNS"); do iperf1 "$1" "$2" "$3"; done | median; }

HZ=$(getconf CLK_TCK)
busy() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat; } # user nice system irq softirq steal

sessions1() { # $1 suffix, $2 target: "exchanges/s ns-of-CPU/exchange" of one round
  local b0 b1 out
  b0=$(busy)
  # New sessions spread over 16 server ports, as real traffic spreads over
  # servers: one (address, port) pair alone is capped at platd's port range.
  out=$(ip netns exec $P$1-h "$BIN/traffic" new-sessions "[$2]:5002" "$NEW" 64 16)
  b1=$(busy)
  echo "$out" | awk -v b=$((b1 - b0)) -v hz="$HZ" '{ split($1, r, "="); split($2, o, "=");
    printf "%d %d\n", r[2], (o[2] > 0 ? b * 1e9 / hz / o[2] : 0) }'
}

received() { ip netns exec $P$1-i nft list counter inet sink sessions | awk '/packets/ {print $2}'; }
empty_table() { # $1 suffix: no conntrack entries left on the exit (each round starts alike)
  ip netns exec $P$1-x conntrack -F >/dev/null 2>&1 || true
  for _ in $(seq 100); do
    [ "$(ip netns exec $P$1-x cat /proc/sys/net/netfilter/nf_conntrack_count 2>/dev/null || echo 0)" = 0 ] && break
    sleep 0.05
  done
}
flood1() { # $1 suffix, $2 target, $3 rate (0: all it can): "sessions/s ns-of-CPU/session" of one round
  local b0 b1 c0 c1 out
  empty_table "$1"
  c0=$(received "$1"); b0=$(busy)
  out=$(ip netns exec $P$1-h "$BIN/traffic" session-flood $SRC6 "$2" "$FLOOD" 16 "$3")
  sleep 0.2 # what the translator still holds reaches the server
  b1=$(busy); c1=$(received "$1")
  echo "$out" | awk -v b=$((b1 - b0)) -v hz="$HZ" -v got=$((c1 - c0)) \
    '{ printf "%d %d\n", got / $4, (got > 0 ? b * 1e9 / hz / got : 0) }'
}

systems=(k c t p)
declare -A name=([k]=kernel [c]=kernel+ct [t]=tayga [p]=platd) target=([k]=fd00:2::2 [c]=fd00:2::2 [t]=$PLAT:c633:6401 [p]=$PLAT:c633:6401)

topology k
topology c
ip netns exec ${P}c-x nft -f - <<'EOT'
table inet stateful {
	chain forward {
		type filter hook forward priority 0
		ct state new counter accept
	}
}
EOT

topology t
X=${P}t-x
cat > /tmp/$P-tayga.conf <<EOT
tun-device nat64
ipv4-addr 192.168.255.1
prefix $PLAT::/96
dynamic-pool 192.168.255.0/24
data-dir /tmp/$P-tayga
EOT
mkdir -p /tmp/$P-tayga
ip netns exec $X tayga -c /tmp/$P-tayga.conf --mktun >/dev/null
ip -n $X link set nat64 up
ip -n $X route add $PLAT::/96 dev nat64
ip -n $X route add 192.168.255.0/24 dev nat64
ip netns exec $X iptables -t nat -A POSTROUTING -s 192.168.255.0/24 -o wan0 -j MASQUERADE
ip netns exec $X tayga -c /tmp/$P-tayga.conf --nodetach >/dev/null 2>&1 &
disown

topology p
X=${P}p-x
ip netns exec $X "$BIN/platd" -plat-prefix $PLAT::/96 -clat-range fddd:1337:1337::/48 -wan-dev wan0 \
  -allow 198.51.100.0/24 -socket /tmp/$P-platd.sock -log-level warn ${PLATD_FLAGS:-} &
disown
for _ in $(seq 50); do [ -S /tmp/$P-platd.sock ] && break; sleep 0.1; done
sleep 0.5

declare -A one four rate cpu xrate
for s in k t p; do
  one[$s]=$(iperf $s "${target[$s]}" 1); four[$s]=$(iperf $s "${target[$s]}" 4)
done
one[c]=-; four[c]=-
declare -A rates cpus xrates
for _ in $(seq "$RUNS"); do
  for s in "${systems[@]}"; do
    read -r r _ < <(flood1 $s "${target[$s]}" 0)
    read -r _ c < <(flood1 $s "${target[$s]}" "$PACE")
    read -r x _ < <(sessions1 $s "${target[$s]}")
    rates[$s]+="$r "; cpus[$s]+="$c "; xrates[$s]+="$x "
  done
done
for s in "${systems[@]}"; do
  rate[$s]=$(printf '%s\n' ${rates[$s]} | median); cpu[$s]=$(printf '%s\n' ${cpus[$s]} | median)
  xrate[$s]=$(printf '%s\n' ${xrates[$s]} | median)
  printf '%-9s 1 stream %6s Gbit/s  4 streams %6s Gbit/s  new UDP sessions %7s /s (rounds: %s)  %6s ns CPU per session at %s/s  exchanges %6s /s (rounds: %s)\n' \
    "${name[$s]}" "${one[$s]}" "${four[$s]}" "${rate[$s]}" "${rates[$s]% }" "${cpu[$s]}" "$PACE" "${xrate[$s]}" "${xrates[$s]% }" >&2
done
# 100 000 concurrent UDP sessions (UDP conntrack entries live 30 s unreplied).
pid=$(pgrep -f "$BIN/platd -plat-prefix $PLAT" | head -1)
empty_table p # the rounds' sessions (30 s): room for all of these
rss0=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
before=$(ip netns exec $X cat /proc/sys/net/netfilter/nf_conntrack_count)
ip netns exec ${P}p-h "$BIN/traffic" udp-blast $SRC6 $PLAT:c633:6401 "$SESSIONS" >/dev/null
sleep 2
entries=$(( $(ip netns exec $X cat /proc/sys/net/netfilter/nf_conntrack_count) - before ))
ip netns exec $X sh -c "echo status | nc -NU /tmp/$P-platd.sock" > /tmp/$P-status.json
rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
printf 'platd    %d UDP flows sent: %d new conntrack entries (one per session), RSS %d KiB before, %d KiB holding them (after a status call)\n' \
  "$SESSIONS" "$entries" "$rss0" "$rss" >&2
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("platd    fast path", d["fastpath"], d.get("fastpath_reason", ""), "port guard", d["port_guard"], "recounts", d.get("port_guard_recounts", 0))' /tmp/$P-status.json >&2

ratio() { python3 -c "print('%.2f' % ($1/$2 if $2 > 0 else 0))"; }
echo "bench-plat: sessions_per_s plat=${rate[p]} tayga=${rate[t]} kernel=${rate[c]} sessions_vs_tayga=$(ratio "${rate[p]}" "${rate[t]}") sessions_vs_kernel=$(ratio "${rate[p]}" "${rate[c]}") ns_per_session plat=${cpu[p]} tayga=${cpu[t]} kernel=${cpu[c]} kernel_stateless=${rate[k]} exchanges_per_s plat=${xrate[p]} tayga=${xrate[t]} kernel=${xrate[k]}; udp_sessions=$entries rss_kib=$rss"
echo "bench-plat: plat=${one[p]} tayga=${one[t]} kernel=${one[k]} vs_tayga=$(ratio "${one[p]}" "${one[t]}") vs_kernel=$(ratio "${one[p]}" "${one[k]}")"

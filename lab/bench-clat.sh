#!/usr/bin/env bash
# bench-clat: client -> server through the same three-namespace topology,
# for (a) the kernel's own IPv4 forwarding, (b) TAYGA as the CLAT, (c)
# clatd on its TUN alone (-fastpath off), (d) clatd with its fast path, and
# as a reference (e) the kernel's own IPv6 forwarding (the client speaks
# IPv6 too: what the IPv6 leg costs the node and the server by itself).
# Bulk TCP (iperf3, 1 and 4 streams), and packets: UDP datagrams of 64 and
# 1200 bytes per second received with a sendmmsg sender (4 flows) that is
# not the bottleneck, and the CPU time of the whole machine (/proc/stat,
# all but idle and iowait) per packet received at a rate all of them
# sustain (UDP_RATE, 64 bytes); the 64-byte figures again with a stateful
# forward chain in the node. All five are set up at once and every round
# takes each in turn; each figure is the median of RUNS rounds, so a slow
# moment of this VM does not fall on one of them only. Ratios printed from
# this one run. Needs root, iperf3, tayga, bin/traffic.
set -euo pipefail
BIN=${BIN:-bin}
SECS=${SECS:-4}
RUNS=${RUNS:-3}
UDP_RATE=${UDP_RATE:-20000}
B=xb$$
P=$B
. "$(dirname "$0")/lib.sh"
ALL=()
cleanup() { ns_del "${ALL[@]}"; rm -f /tmp/$B-*; }
trap cleanup EXIT INT TERM

use() { P=$B$1; C=$P-c N=$P-n S=$P-s; } # the namespaces of system $1

systems=(k t u c 6)
declare -A name=([k]=kernel [t]=tayga [u]=clatd-tun [c]=clatd [6]=kernel6)
declare -A dst=([k]=198.51.100.1 [t]=198.51.100.1 [u]=198.51.100.1 [c]=198.51.100.1 [6]=$PLAT:c633:6401)
hostport() { if [ "$1" = 6 ]; then echo "[${dst[$1]}]:$2"; else echo "${dst[$1]}:$2"; fi; }

iperf1() { # $1 = system, $2 = streams; prints Gbit/s received in one run
  ip netns exec $S iperf3 -s -1 -D -p 5201 >/dev/null 2>&1 || true
  sleep 0.5
  ip netns exec $C iperf3 -c "${dst[$1]}" -p 5201 -t "$SECS" -P "$2" -J 2>/dev/null |
    python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))'
  ip netns pids $S | xargs -r ps -o pid=,args= -p 2>/dev/null | awk '/iperf3/ {print $1}' | xargs -r kill 2>/dev/null || true
}

HZ=$(getconf CLK_TCK)
busy() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat; } # user nice system irq softirq steal

udp1() { # $1 = system, $2 = size, $3 = pps (0: as fast as it goes); prints "received busy_jiffies"
  local out=/tmp/$B-sink b0 b1
  ip netns exec $S "$BIN/traffic" udp-sink '[::]:6000' 4 $((SECS + 1)) >"$out" 2>&1 &
  local sink=$!
  for _ in $(seq 50); do grep -q listening "$out" 2>/dev/null && break; sleep 0.1; done
  b0=$(busy)
  ip netns exec $C "$BIN/traffic" udp-flood "$(hostport "$1" 6000)" "$2" "$SECS" 4 "$3" >/dev/null
  b1=$(busy)
  wait $sink || true
  echo "$(awk '/^received/{print $2}' "$out") $((b1 - b0))"
  rm -f "$out"
}
pps() { udp1 "$1" "$2" 0 | awk -v s="$SECS" '{printf "%d", $1/s}'; }
ns_per_pkt() { # busy CPU of the whole machine per packet received at UDP_RATE
  udp1 "$1" 64 "$UDP_RATE" | awk -v hz="$HZ" '{ if ($1 > 0) printf "%d", $2 * 1e9 / hz / $1; else print 0 }'
}

# A Gluon node forwards through fw3's stateful rules: conntrack sees every
# packet. The small-UDP figures are taken again with a forward chain like
# fw3's in the node (its zones accept forwarding, new connections
# included), for all alike.
firewall() {
  ip netns exec $N nft -f - <<'EOT'
table inet benchfw {
  chain forward {
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    ct state new accept
  }
}
EOT
}

metrics=(one four u64 u1200 ns fw fwns)
round() { # $1 = system: one round of every metric, "one four u64 u1200 ns fw fwns"
  local one four u64 u1200 ns fw fwns
  one=$(iperf1 "$1" 1); four=$(iperf1 "$1" 4)
  u64=$(pps "$1" 64); u1200=$(pps "$1" 1200); ns=$(ns_per_pkt "$1")
  firewall; fw=$(pps "$1" 64); fwns=$(ns_per_pkt "$1"); ip netns exec $N nft delete table inet benchfw
  echo "$one $four $u64 $u1200 $ns $fw $fwns"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

for s in "${systems[@]}"; do
  use $s; ALL+=("$C" "$N" "$S")
  case $s in k) lab_topology kernel ;; *) lab_topology xlat ;; esac
done

use 6 # the client gets IPv6, routed through the node like the translated packets
ip -n $C addr add fd00:2::2/64 dev c0 nodad; ip -n $N addr add fd00:2::1/64 dev n0 nodad
ip -n $C -6 route add default via fd00:2::1; ip -n $S -6 route add fd00:2::/64 via fd00:1::1

use t
cat > /tmp/$B-tayga.conf <<EOT
tun-device tayga0
ipv4-addr 192.0.0.2
ipv6-addr $CLAT:c000:2
prefix $PLAT::/96
map 10.130.0.10 $CLAT:a82:a
EOT
ip netns exec $N tayga -c /tmp/$B-tayga.conf --mktun >/dev/null
ip -n $N link set tayga0 up
ip -n $N route add default dev tayga0 mtu 1480
ip -n $N route add $CLAT::/96 dev tayga0
ip netns exec $N tayga -c /tmp/$B-tayga.conf --nodetach >/dev/null 2>&1 &
disown

use u; start_clatd /tmp/$B-u.sock -fastpath off
use c; start_clatd /tmp/$B-c.sock -fastpath on
sleep 0.5

declare -A got # got[system,metric] = the rounds' figures
for _ in $(seq "$RUNS"); do
  for s in "${systems[@]}"; do
    use $s
    read -r "${metrics[@]}" < <(round $s)
    for m in "${metrics[@]}"; do got[$s,$m]+="${!m} "; done
  done
done
declare -A med
for s in "${systems[@]}"; do
  for m in "${metrics[@]}"; do med[$s,$m]=$(printf '%s\n' ${got[$s,$m]} | median); done
  printf '%-9s 1 stream %6s Gbit/s   4 streams %6s Gbit/s   UDP 64 B %8s pps   1200 B %8s pps   %6s ns CPU/packet at %s pps   with conntrack: %8s pps %6s ns   (64 B rounds: %s)\n' \
    "${name[$s]}" "${med[$s,one]}" "${med[$s,four]}" "${med[$s,u64]}" "${med[$s,u1200]}" "${med[$s,ns]}" "$UDP_RATE" \
    "${med[$s,fw]}" "${med[$s,fwns]}" "${got[$s,u64]% }" >&2
done
use c; ip netns exec $N "$BIN/xlatctl" -clatd-socket /tmp/$B-c.sock clatd status >&2 || true

ratio() { python3 -c "print('%.2f' % ($1/$2 if $2 > 0 else 0))"; }
k() { echo "${med[k,$1]}"; }
t() { echo "${med[t,$1]}"; }
u() { echo "${med[u,$1]}"; }
c() { echo "${med[c,$1]}"; }
v6() { echo "${med[6,$1]}"; }
echo "bench-clat: clat=$(c one) tayga=$(t one) kernel=$(k one) vs_tayga=$(ratio "$(c one)" "$(t one)") vs_kernel=$(ratio "$(c one)" "$(k one)")" \
  "udp_pps=$(c u64) udp_vs_tayga=$(ratio "$(c u64)" "$(t u64)") udp_vs_kernel=$(ratio "$(c u64)" "$(k u64)")" \
  "udp1200_pps=$(c u1200) udp1200_vs_tayga=$(ratio "$(c u1200)" "$(t u1200)") udp1200_vs_kernel=$(ratio "$(c u1200)" "$(k u1200)")" \
  "ns_per_pkt=$(c ns) ns_vs_kernel=$(ratio "$(c ns)" "$(k ns)") tayga_udp_pps=$(t u64) kernel_udp_pps=$(k u64) tayga_ns_per_pkt=$(t ns) kernel_ns_per_pkt=$(k ns)" \
  "tun=$(u one) tun_udp_pps=$(u u64) tun_udp1200_pps=$(u u1200) tun_ns_per_pkt=$(u ns)" \
  "fw_udp_pps=$(c fw) fw_udp_vs_tayga=$(ratio "$(c fw)" "$(t fw)") fw_udp_vs_kernel=$(ratio "$(c fw)" "$(k fw)") fw_ns_per_pkt=$(c fwns) fw_ns_vs_kernel=$(ratio "$(c fwns)" "$(k fwns)")" \
  "tayga_fw_udp_pps=$(t fw) kernel_fw_udp_pps=$(k fw) tun_fw_udp_pps=$(u fw) tayga_fw_ns_per_pkt=$(t fwns) kernel_fw_ns_per_pkt=$(k fwns) tun_fw_ns_per_pkt=$(u fwns)" \
  "kernel6=$(v6 one) vs_kernel6=$(ratio "$(c one)" "$(v6 one)") kernel6_udp_pps=$(v6 u64) udp_vs_kernel6=$(ratio "$(c u64)" "$(v6 u64)") kernel6_ns_per_pkt=$(v6 ns) ns_vs_kernel6=$(ratio "$(c ns)" "$(v6 ns)")"

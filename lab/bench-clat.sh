#!/usr/bin/env bash
# bench-clat: client -> server through the same three-namespace topology,
# for (a) the kernel's own IPv4 forwarding, (b) TAYGA as the CLAT, (c)
# clatd; ratios printed from this one run. Bulk TCP (iperf3), and packets:
# UDP datagrams of 64 and 1200 bytes per second received with a sendmmsg
# sender (4 flows) that is not the bottleneck, and the CPU time of the whole
# machine (/proc/stat, all but idle and iowait) per packet received at a
# rate all three sustain (UDP_RATE, 64 bytes). Needs root, iperf3, tayga,
# bin/traffic.
set -euo pipefail
BIN=${BIN:-bin}
SECS=${SECS:-5}
P=xb$$
. "$(dirname "$0")/lib.sh"
trap lab_cleanup EXIT INT TERM
topology() { lab_topology "$1"; }

RUNS=${RUNS:-3}
iperf1() { # $1 = streams; prints Gbit/s received in one run
  ip netns exec $S iperf3 -s -1 -D -p 5201 >/dev/null 2>&1 || true
  sleep 0.5
  ip netns exec $C iperf3 -c 198.51.100.1 -p 5201 -t "$SECS" -P "$1" -J 2>/dev/null |
    python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))'
  ip netns pids $S | xargs -r kill 2>/dev/null || true
}

iperf() { # $1 = streams; the median of RUNS runs (this VM's runs vary by +-10%)
  local r=()
  for _ in $(seq "$RUNS"); do r+=("$(iperf1 "$1")"); done
  printf '%s\n' "${r[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

UDP_RATE=${UDP_RATE:-20000}
HZ=$(getconf CLK_TCK)
busy() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat; } # user nice system irq softirq steal

udp1() { # $1 = size, $2 = pps (0: as fast as it goes); prints "received busy_jiffies"
  local out=/tmp/$P-sink b0 b1
  ip netns exec $S "$BIN/traffic" udp-sink '[::]:6000' 4 $((SECS + 1)) >"$out" 2>&1 &
  local sink=$!
  for _ in $(seq 50); do grep -q listening "$out" 2>/dev/null && break; sleep 0.1; done
  b0=$(busy)
  ip netns exec $C "$BIN/traffic" udp-flood 198.51.100.1:6000 "$1" "$SECS" 4 "$2" >/dev/null
  b1=$(busy)
  wait $sink || true
  echo "$(awk '/^received/{print $2}' "$out") $((b1 - b0))"
  rm -f "$out"
}

udp_pps() { # $1 = size: the median of RUNS runs, datagrams per second received
  local r=()
  for _ in $(seq "$RUNS"); do r+=("$(udp1 "$1" 0 | awk -v s="$SECS" '{printf "%d", $1/s}')"); done
  printf '%s\n' "${r[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

ns_per_pkt() { # busy CPU of the whole machine per packet received at UDP_RATE
  udp1 64 "$UDP_RATE" | awk -v hz="$HZ" '{ if ($1 > 0) printf "%d", $2 * 1e9 / hz / $1; else print 0 }'
}

# A Gluon node forwards through fw3's stateful rules: conntrack sees every
# packet. The small-UDP figures are taken again with a forward chain like
# fw3's in the node (its zones accept forwarding, new connections
# included), for all three alike.
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

measure() { # $1 = name; prints "tcp_1_stream udp64_pps udp1200_pps ns_per_pkt udp64_pps_fw ns_per_pkt_fw"
  local one four u64 u1200 ns fw fwns
  one=$(iperf 1); four=$(iperf 4)
  u64=$(udp_pps 64); u1200=$(udp_pps 1200); ns=$(ns_per_pkt)
  firewall; fw=$(udp_pps 64); fwns=$(ns_per_pkt); ip netns exec $N nft delete table inet benchfw
  printf '%-8s 1 stream %6s Gbit/s   4 streams %6s Gbit/s   UDP 64 B %8s pps   1200 B %8s pps   %6s ns CPU/packet at %s pps   with conntrack: %8s pps %6s ns\n' \
    "$1" "$one" "$four" "$u64" "$u1200" "$ns" "$UDP_RATE" "$fw" "$fwns" >&2
  echo "$one $u64 $u1200 $ns $fw $fwns"
}

topology kernel
read -r kernel kernel_udp kernel_udp1200 kernel_ns kernel_fw kernel_fwns <<<"$(measure kernel)"

topology xlat
cat > /tmp/$P-tayga.conf <<EOT
tun-device tayga0
ipv4-addr 192.0.0.2
ipv6-addr $CLAT:c000:2
prefix $PLAT::/96
map 10.130.0.10 $CLAT:a82:a
EOT
ip netns exec $N tayga -c /tmp/$P-tayga.conf --mktun >/dev/null
ip -n $N link set tayga0 up
ip -n $N route add default dev tayga0 mtu 1480
ip -n $N route add $CLAT::/96 dev tayga0
ip netns exec $N tayga -c /tmp/$P-tayga.conf --nodetach >/dev/null 2>&1 &
sleep 0.5
read -r tayga tayga_udp tayga_udp1200 tayga_ns tayga_fw tayga_fwns <<<"$(measure tayga)"
ip netns pids $N | xargs -r kill 2>/dev/null || true
rm -f /tmp/$P-tayga.conf

# clatd with its TUN path only, then with the kernel fast path (its default)
topology xlat
start_clatd /tmp/$P-clatd.sock -fastpath off
read -r tun tun_udp tun_udp1200 tun_ns tun_fw tun_fwns <<<"$(measure clatd-tun)"
ip netns pids $N | xargs -r kill 2>/dev/null || true
topology xlat
start_clatd /tmp/$P-clatd.sock -fastpath on
read -r clat clat_udp clat_udp1200 clat_ns clat_fw clat_fwns <<<"$(measure clatd)"
ip netns exec $N "$BIN/xlatctl" -clatd-socket /tmp/$P-clatd.sock clatd status >&2 || true

ratio() { python3 -c "print('%.2f' % ($1/$2 if $2 > 0 else 0))"; }
echo "bench-clat: clat=$clat tayga=$tayga kernel=$kernel vs_tayga=$(ratio "$clat" "$tayga") vs_kernel=$(ratio "$clat" "$kernel")" \
  "udp_pps=$clat_udp udp_vs_tayga=$(ratio "$clat_udp" "$tayga_udp") udp_vs_kernel=$(ratio "$clat_udp" "$kernel_udp")" \
  "udp1200_pps=$clat_udp1200 udp1200_vs_tayga=$(ratio "$clat_udp1200" "$tayga_udp1200") udp1200_vs_kernel=$(ratio "$clat_udp1200" "$kernel_udp1200") ns_per_pkt=$clat_ns ns_vs_kernel=$(ratio "$clat_ns" "$kernel_ns") tayga_udp_pps=$tayga_udp kernel_udp_pps=$kernel_udp tayga_ns_per_pkt=$tayga_ns kernel_ns_per_pkt=$kernel_ns" \
  "tun=$tun tun_udp_pps=$tun_udp tun_udp1200_pps=$tun_udp1200 tun_ns_per_pkt=$tun_ns" \
  "fw_udp_pps=$clat_fw fw_udp_vs_tayga=$(ratio "$clat_fw" "$tayga_fw") fw_udp_vs_kernel=$(ratio "$clat_fw" "$kernel_fw") fw_ns_per_pkt=$clat_fwns fw_ns_vs_kernel=$(ratio "$clat_fwns" "$kernel_fwns") tayga_fw_udp_pps=$tayga_fw kernel_fw_udp_pps=$kernel_fw tun_fw_udp_pps=$tun_fw tayga_fw_ns_per_pkt=$tayga_fwns kernel_fw_ns_per_pkt=$kernel_fwns tun_fw_ns_per_pkt=$tun_fwns"

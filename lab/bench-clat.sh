#!/usr/bin/env bash
# bench-clat: TCP throughput client -> server through the same three-namespace
# topology, for (a) the kernel's own IPv4 forwarding, (b) TAYGA as the CLAT,
# (c) clatd; ratios printed from this one run. Needs root, iperf3, tayga.
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

measure() { # $1 = name
  local one four
  one=$(iperf 1); four=$(iperf 4)
  printf '%-8s 1 stream %6s Gbit/s   4 streams %6s Gbit/s\n' "$1" "$one" "$four" >&2
  echo "$one"
}

topology kernel
kernel=$(measure kernel)

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
tayga=$(measure tayga)
ip netns pids $N | xargs -r kill 2>/dev/null || true
rm -f /tmp/$P-tayga.conf

topology xlat
start_clatd /tmp/$P-clatd.sock
clat=$(measure clatd)
ip netns exec $N sh -c 'echo status | nc -NU /tmp/'$P'-clatd.sock' >&2 || true

ratio() { python3 -c "print('%.2f' % ($1/$2 if $2 > 0 else 0))"; }
echo "bench-clat: clat=$clat tayga=$tayga kernel=$kernel vs_tayga=$(ratio "$clat" "$tayga") vs_kernel=$(ratio "$clat" "$kernel")"

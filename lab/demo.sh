#!/usr/bin/env bash
# make demo: an IPv4-only client reaches an IPv4 "internet" server through
# the CLAT on its node (clatd) and the NAT64 on an exit node (platd), across
# an IPv6-only mesh link. (Babel, failover and roaming join as prefixd and
# l3roamd land.) KEEP=1 leaves the lab up for exploring.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "make demo needs root (network namespaces)"; exit 1; }
bash lab/deps.sh
BIN=${BIN:-bin}
P=demo
. lab/lib.sh
C=$P-client N=$P-node X=$P-exit I=$P-inet
fail=0
step() { printf '\n== %s\n' "$*"; }
ok() { printf '   ok: %s\n' "$*"; }
bad() { printf '   FAILED: %s\n' "$*"; fail=1; }
cleanup() { ns_del $C $N $X $I; rm -f /tmp/demo-*.sock /tmp/demo-blob; }
finish() {
  if [ "${KEEP:-}" = 1 ]; then
    printf '\nThe lab is still up (KEEP=1). Enter it with e.g.\n'
    printf '  ip netns exec %s bash                     # the IPv4-only client\n' $C
    printf '  echo status | ip netns exec %s nc -NU /tmp/demo-clatd.sock\n' $N
    printf '  echo status | ip netns exec %s nc -NU /tmp/demo-platd.sock\n' $X
    printf 'Remove it with: for n in %s %s %s %s; do ip netns del $n; done\n' $C $N $X $I
  else
    cleanup
  fi
}
trap finish EXIT
trap 'exit 130' INT TERM

step "Building the lab: client (IPv4 only) -- node (clatd) -- IPv6 only -- exit (platd) -- IPv4 internet"
cleanup
ns_add $C $N $X $I
ip link add ${P}a netns $C type veth peer name ${P}b netns $N
ip link add ${P}c netns $N type veth peer name ${P}d netns $X
ip link add ${P}e netns $X type veth peer name ${P}f netns $I
ip -n $C link set ${P}a name c0 up; ip -n $N link set ${P}b name br-client up
ip -n $N link set ${P}c name mesh0 up; ip -n $X link set ${P}d name mesh0 up
ip -n $X link set ${P}e name wan up; ip -n $I link set ${P}f name i0 up
for ns in $N $X; do ip netns exec $ns sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1; done
ip -n $C addr add 10.130.0.10/16 dev c0
ip -n $C route add default via 10.130.0.1
ip -n $N addr add 10.130.0.1/16 dev br-client
ip -n $N addr add fd00:1::1/64 dev mesh0
ip -n $N route add $PLAT::/96 via fd00:1::2
ip -n $X addr add fd00:1::2/64 dev mesh0
ip -n $X route add fddd:1337:1337::/48 via fd00:1::1
ip -n $X addr add 198.51.100.254/24 dev wan
ip -n $I addr add 198.51.100.1/24 dev i0
ip netns exec $X "$BIN/platd" -plat-prefix $PLAT::/96 -clat-range fddd:1337:1337::/48 -wan-dev wan \
  -allow 198.51.100.0/24 -socket /tmp/demo-platd.sock -log-level warn &
disown
ip netns exec $N "$BIN/clatd" -clat-prefix $CLAT::/96 -plat-prefix $PLAT::/96 -client-net 10.130.0.0/16 \
  -client-dev br-client -socket /tmp/demo-clatd.sock -log-level warn &
disown
for _ in $(seq 50); do [ -S /tmp/demo-clatd.sock ] && [ -S /tmp/demo-platd.sock ] && break; sleep 0.1; done
if [ -S /tmp/demo-clatd.sock ] && [ -S /tmp/demo-platd.sock ]; then
  ok "clatd on the node (CLAT $CLAT::/96), platd on the exit (PLAT $PLAT::/96, WAN 198.51.100.254)"
else bad "daemons did not start"; fi

step "The client pings 198.51.100.1: IPv4 -> clatd -> IPv6 over the mesh -> platd -> IPv4"
if out=$(ip netns exec $C ping -c 3 -i 0.2 -W 2 198.51.100.1); then
  ok "$(echo "$out" | grep -E 'packets transmitted')"
  ok "$(echo "$out" | grep -E '^rtt')"
else bad "ping"; echo "$out"; fi

step "The client downloads 50 MB over HTTP from 198.51.100.1"
head -c 50000000 /dev/urandom > /tmp/demo-blob
ip netns exec $I python3 -m http.server --bind 0.0.0.0 --directory /tmp 8080 >/dev/null 2>&1 &
disown
sleep 1
if res=$(ip netns exec $C python3 - <<'PY'
import hashlib, time, urllib.request
t = time.time()
data = urllib.request.urlopen("http://198.51.100.1:8080/demo-blob", timeout=60).read()
dt = time.time() - t
print("%d bytes in %.2f s (%.2f Gbit/s), sha256 %s" % (len(data), dt, len(data) * 8 / dt / 1e9, hashlib.sha256(data).hexdigest()[:16]))
PY
); then
  want=$(sha256sum /tmp/demo-blob | cut -c1-16)
  if [[ "$res" == *"$want"* ]]; then ok "$res (matches the server's file)"; else bad "checksum mismatch: $res"; fi
else bad "download"; fi

step "A private IPv4 destination is refused at the exit (a gate, not an open relay)"
out=$(ip netns exec $C ping -c 1 -W 2 192.168.1.1 2>&1 || true)
if echo "$out" | grep -qiE "unreachable|prohibited"; then ok "$(echo "$out" | grep -iE 'unreachable|prohibited' | head -1)"
else bad "192.168.1.1 was not refused: $out"; fi

step "The node's CLAT status"
ip netns exec $N sh -c 'echo status | nc -NU /tmp/demo-clatd.sock' | python3 -m json.tool || bad "clatd status"
step "The exit's PLAT status and NAT64 sessions"
ip netns exec $X sh -c 'echo status | nc -NU /tmp/demo-platd.sock' | python3 -m json.tool || bad "platd status"
ip netns exec $X sh -c 'echo sessions | nc -NU /tmp/demo-platd.sock' | python3 -m json.tool || bad "platd sessions"

if [ $fail = 0 ]; then printf '\ndemo: every step worked\n'; else printf '\ndemo: some steps FAILED\n'; exit 1; fi

#!/usr/bin/env bash
# make demo: an IPv4-only client reaches an IPv4 "internet" server through
# the CLAT on its node, across an IPv6-only link. (The full mesh with PLATs,
# babeld, failover and roaming grows here as those daemons land.)
# KEEP=1 leaves the lab up for exploring.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "make demo needs root (network namespaces)"; exit 1; }
bash lab/deps.sh
BIN=${BIN:-bin}
P=demo
. lab/lib.sh
fail=0
step() { printf '\n== %s\n' "$*"; }
ok() { printf '   ok: %s\n' "$*"; }
bad() { printf '   FAILED: %s\n' "$*"; fail=1; }
finish() {
  if [ "${KEEP:-}" = 1 ]; then
    printf '\nThe lab is still up (KEEP=1). Enter it with e.g.\n  ip netns exec %s bash    # the client\n  ip netns exec %s bash    # the node running clatd\n  echo status | ip netns exec %s nc -NU /tmp/demo-clatd.sock\nRemove it with: for n in %s %s %s; do ip netns del $n; done\n' $C $N $N $C $N $S
  else
    lab_cleanup; rm -f /tmp/demo-clatd.sock
  fi
}
trap finish EXIT
trap 'exit 130' INT TERM

step "Building the lab: client (IPv4 only) -- node (clatd) -- IPv6 only -- server (198.51.100.1 behind PLAT $PLAT::/96)"
lab_topology xlat
start_clatd /tmp/demo-clatd.sock && ok "clatd runs on the node, TUN 'clat', CLAT prefix $CLAT::/96"

step "The client pings 198.51.100.1 over IPv4; the node carries it as IPv6 ($CLAT::10.130.0.10 -> $PLAT::198.51.100.1)"
if out=$(ip netns exec $C ping -c 3 -i 0.2 -W 2 198.51.100.1); then
  ok "$(echo "$out" | grep -E 'packets transmitted|rtt')"
else bad "ping"; echo "$out"; fi

step "The client downloads 50 MB over HTTP from 198.51.100.1"
head -c 50000000 /dev/urandom > /tmp/demo-blob
ip netns exec $S python3 -m http.server --bind :: --directory /tmp 8080 >/dev/null 2>&1 &
disown
sleep 1
if res=$(ip netns exec $C python3 - <<'PY'
import hashlib, time, urllib.request
t = time.time()
data = urllib.request.urlopen("http://198.51.100.1:8080/demo-blob", timeout=30).read()
dt = time.time() - t
print("%d bytes in %.2f s (%.2f Gbit/s), sha256 %s" % (len(data), dt, len(data) * 8 / dt / 1e9, hashlib.sha256(data).hexdigest()[:16]))
PY
); then
  want=$(sha256sum /tmp/demo-blob | cut -c1-16)
  if [[ "$res" == *"$want"* ]]; then ok "$res (matches the server's file)"; else bad "checksum mismatch: $res"; fi
else bad "download"; fi
rm -f /tmp/demo-blob

step "clatd's status, from its control socket"
ip netns exec $N sh -c 'echo status | nc -NU /tmp/demo-clatd.sock' | python3 -m json.tool || bad "status"

if [ $fail = 0 ]; then printf '\ndemo: every step worked\n'; else printf '\ndemo: some steps FAILED\n'; exit 1; fi

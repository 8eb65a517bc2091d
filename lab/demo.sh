#!/usr/bin/env bash
# make demo: the whole suite on one machine, narrated. A Babel mesh in
# network namespaces (an IPv4 internet, two exits with platd, two nodes, a
# client on DHCP), every daemon started from its Gluon/OpenWrt package:
# upgrade scripts -> UCI -> procd init script -> flags. Then: the client's
# IPv4 through CLAT and the nearest PLAT, the exit failing, the client
# roaming with a download running. The narration is e2e's TestDemo (the
# same steps run in make test). KEEP=1 leaves the lab up until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "make demo needs root (network namespaces)"; exit 1; }
command -v go >/dev/null || { echo "make demo needs Go 1.25 or newer (https://go.dev/dl)"; exit 1; }
bash lab/deps.sh
mkdir -p bin
(cd e2e && go test -c -o ../bin/e2e.test .)
cd e2e
# The test binary handles Ctrl-C itself: it tears the lab down, then exits.
exec env DEMO=1 ../bin/e2e.test -test.run '^TestDemo$' -test.timeout 30m

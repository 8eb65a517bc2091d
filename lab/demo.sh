#!/usr/bin/env bash
# make demo: the whole suite on one machine, narrated. A Babel mesh of Gluon
# nodes (lab/gluon: Gluon v2023.2.6 on OpenWrt 23.05 built from the pinned
# sources, procd as PID 1, this project's packages installed as an image
# build does): two exits, two nodes, a community server with the site's
# DNS, an IPv4 internet, a client on DHCP. Then: DNS and the client's IPv4
# through CLAT and the nearest PLAT, an exit losing power, the client
# roaming with a download running. The narration is e2e's TestDemo (the
# same steps run in make test). KEEP=1 leaves the lab up until Ctrl-C.
# The pinned sources come from $UPSTREAM_CACHE, else ../shared's offline
# cache when it is there, else their public repositories.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "make demo needs root (network namespaces)"; exit 1; }
command -v go >/dev/null || { echo "make demo needs Go 1.25 or newer (https://go.dev/dl)"; exit 1; }
bash lab/deps.sh
if [ -z "${UPSTREAM_CACHE:-}" ] && [ -d ../shared/upstream/tarballs ]; then
	UPSTREAM_CACHE=$(cd ../shared/upstream/tarballs && pwd)
	export UPSTREAM_CACHE
fi
mkdir -p bin
(cd e2e && go test -c -o ../bin/e2e.test .)
cd e2e
# The test binary handles Ctrl-C itself: it tears the lab down, then exits.
exec env DEMO=1 ../bin/e2e.test -test.run '^TestDemo$' -test.timeout 30m

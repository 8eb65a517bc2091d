# gluon-464xlat: build, test and measure without the OpenWrt SDK.
# make test      unit + fuzz (bounded) + end-to-end tests in network namespaces (root)
# make test-mips packet tests cross-compiled for big-endian MIPS, run under qemu-mips-static
# make demo      the lab in network namespaces, narrated (root)
# make bench-clat  kernel IPv4/IPv6 forwarding vs TAYGA vs clatd (TUN, fast path): TCP, UDP pps, CPU/packet

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
DAEMONS := clatd platd prefixd l3roamd
# What the packages ship: every daemon in one binary, symlinked by name.
MULTI := gluon-464xlat
GO ?= go
LDFLAGS := -s -w -X github.com/gluon-464xlat/gluon-464xlat/internal/cli.Version=$(VERSION)
# A count, not a duration: with a duration, Go before 1.27 can fail a
# target with "context deadline exceeded" when the time is up while a
# worker is busy (golang/go#75804), a failure that found nothing.
FUZZTIME ?= 500000x
# DESIGN.md section 5: OpenWrt arch -> Go target
TARGETS := mips_24kc:mips:softfloat mipsel_24kc:mipsle:softfloat arm_cortex-a7_neon-vfpv4:arm:7 aarch64_cortex-a53:arm64: x86_64:amd64:

.PHONY: bpf test-bpf test-race test-gluon-mesh bench-mem test-feed bench-roam ipk size test-ipk test-mesh all build cross test test-unit test-e2e test-fuzz test-mips lint bench bench-clat bench-plat bench-failover bench-mips demo clean deps

all: build

build:
	@mkdir -p bin
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ $(addprefix ./cmd/,$(DAEMONS) xlatctl $(MULTI))

# make cross builds with the oldest Go the packages must build with: the Go
# of OpenWrt 23.05's packages feed (Gluon v2023.2.x). The module proxy
# serves it; CROSS_GO=local uses this machine's go.
CROSS_GO ?= go1.21.13
cross:
	@for t in $(TARGETS); do \
	  arch=$${t%%:*}; rest=$${t#*:}; goarch=$${rest%%:*}; sub=$${rest#*:}; \
	  mkdir -p dist/$$arch; \
	  echo "cross $$arch (GOARCH=$$goarch $$sub)"; \
	  env GOTOOLCHAIN=$(CROSS_GO) CGO_ENABLED=0 GOOS=linux GOARCH=$$goarch GOMIPS=$$( [ "$$sub" = softfloat ] && echo softfloat ) \
	    GOARM=$$( [ "$$goarch" = arm ] && echo $$sub ) \
	    $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/$$arch/ $(addprefix ./cmd/,$(DAEMONS) $(MULTI)) || exit 1; \
	done

# Flash cost per target; last line: the mips_24kc totals (DESIGN.md section 5).
size: ipk
	@bash lab/size.sh dist

# Installable .ipk files per target (nfpm, see tools/mkipk), without the SDK.
IPK_VERSION := 0.1.0-r$(shell git rev-list --count HEAD 2>/dev/null || echo 0)
ipk: cross
	@mkdir -p bin
	cd tools/mkipk && $(GO) build -o ../../bin/mkipk .
	@rm -rf dist/ipk
	@for t in $(TARGETS); do arch=$${t%%:*}; \
	  bin/mkipk -arch $$arch -version $(IPK_VERSION) -bin dist/$$arch/gluon-464xlat -out dist/ipk \
	    packages/gluon-464xlat/nfpm.yaml packages/gluon-464xlat/nfpm-plat.yaml || exit 1; \
	done

lint:
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet ./...
	shellcheck -s sh files/etc/init.d/*
	shellcheck -s sh packages/gluon-464xlat/postinst packages/gluon-464xlat/prerm lab/procd-shim.sh packages/gluon-464xlat-*/files/lib/gluon/reload.d/*
	shellcheck -S warning -x lab/*.sh lab/gluon/*.sh lab/upstream/*.sh .ci/run

test: lint test-bpf test-unit test-race test-ipk test-feed test-fuzz test-e2e

# The BPF objects for both byte orders (mips is big-endian): the fast path
# (fastpath/bpf/clat.c) and platd's port guard (internal/ctguard/bpf/
# ctguard.c), built with clang: committed, so that a build needs no clang;
# test-bpf checks that they are what the sources build.
BPF_CFLAGS := -O2 -g0 -mcpu=v2 -Wall -Werror -I/usr/include/$(shell gcc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu)
BPF_OUT ?= $(CURDIR)
BPF_OBJS := fastpath/clat_bpfel.o fastpath/clat_bpfeb.o internal/ctguard/ctguard_bpfel.o internal/ctguard/ctguard_bpfeb.o
bpf:
	cd fastpath/bpf && for t in bpfel bpfeb; do clang $(BPF_CFLAGS) -target $$t -c clat.c -o $(BPF_OUT)/fastpath/clat_$$t.o || exit 1; done
	cd internal/ctguard/bpf && for t in bpfel bpfeb; do clang $(BPF_CFLAGS) -target $$t -c ctguard.c -o $(BPF_OUT)/internal/ctguard/ctguard_$$t.o || exit 1; done

test-bpf:
	@tmp=$$(mktemp -d) && mkdir -p $$tmp/fastpath $$tmp/internal/ctguard && $(MAKE) --no-print-directory -s bpf BPF_OUT=$$tmp && for o in $(BPF_OBJS); do \
	  cmp $$tmp/$$o $$o || \
	  { echo "$$o is not what its source builds: run make bpf"; rm -rf $$tmp; exit 1; }; \
	done; rm -rf $$tmp; echo "test-bpf: $(BPF_OBJS) are what their sources build"

# The OpenWrt package built by OpenWrt's own golang-package.mk (pinned, from
# $$UPSTREAM_CACHE or its repository) with the Go of OpenWrt 23.05 (1.21.13),
# 24.10 (1.23.12) and this machine's, for mips_24kc (packages/feedbuild_test.go).
test-feed:
	XLAT_FEED_BUILD=1 $(GO) test -count=1 -v -run '^TestFeedBuild' ./packages

test-unit:
	$(GO) test -count=1 ./siit ./header ./intercom ./tun ./fastpath ./internal/... ./daemon/... ./cmd/... ./packages

# The daemons' and their libraries' tests under the race detector: they
# run goroutines around shared state (watchers, status, control sockets).
test-race:
	CGO_ENABLED=1 $(GO) test -race -count=1 ./daemon/... ./internal/...

# Every .ipk of make ipk unpacks to the expected files, control fields and
# executables for its architecture.
test-ipk: ipk
	XLAT_IPK_DIR=$(CURDIR)/dist/ipk $(GO) test -count=1 -run '^TestIPK' ./packages

# Each fuzz target runs FUZZTIME inputs (10-30 s here); the corpus lives in testdata/fuzz.
test-fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzTranslate4to6$$' -fuzztime $(FUZZTIME) ./siit
	$(GO) test -run '^$$' -fuzz '^FuzzTranslate6to4$$' -fuzztime $(FUZZTIME) ./siit
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./intercom
	$(GO) test -run '^$$' -fuzz '^FuzzParseLine$$' -fuzztime $(FUZZTIME) ./internal/babel
	$(GO) test -run '^$$' -fuzz '^FuzzFastPath$$' -fuzztime $(FUZZTIME) ./fastpath
	$(GO) test -run '^$$' -fuzz '^FuzzFastPathPLAT$$' -fuzztime $(FUZZTIME) ./fastpath

# All of them with clatd's default (the kernel fast path on where it
# loads), then the tests where clatd translates with the fast path off.
E2E_TUN_ONLY := ^(TestCLAT|TestConformanceCorpusThroughClatd|TestPLAT|TestRoamKeepsIPv4SessionsAcrossNodes|TestPLATSwitchKeepsOldSessionsOnTheOldPLAT$$)
test-e2e:
	@[ "$$(id -u)" = 0 ] || { echo "test-e2e needs root (network namespaces)"; exit 1; }
	$(GO) test -count=1 -timeout 40m ./e2e
	XLAT_FASTPATH=off $(GO) test -count=1 -timeout 20m -run '$(E2E_TUN_ONLY)' ./e2e

# The tests on Gluon nodes alone (they are part of test-e2e).
test-gluon-mesh:
	@[ "$$(id -u)" = 0 ] || { echo "test-gluon-mesh needs root"; exit 1; }
	$(GO) test -count=1 -timeout 30m -run '^TestGluon' -v ./e2e

# prefixd's Babel mesh tests alone (they are part of test-e2e).
test-mesh:
	$(GO) test -count=1 -timeout 20m -run 'TestPrefixd' -v ./e2e

# Big-endian MIPS finds byte-order bugs: the packet tests under qemu.
test-mips:
	GOARCH=mips GOMIPS=softfloat CGO_ENABLED=0 $(GO) test -count=1 -exec qemu-mips-static ./header ./siit ./intercom
	GOARCH=mips GOMIPS=softfloat CGO_ENABLED=0 $(GO) test -count=1 -exec qemu-mips-static -run '^TestRelocation' ./fastpath ./internal/ctguard

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./siit

bin/traffic: $(wildcard lab/traffic/*.go internal/netlab/*.go)
	$(GO) build -o bin/traffic ./lab/traffic

# The fast path where the kernel interprets it (32-bit MIPS, Linux 5.15):
# Debian's mipsel kernel under qemu, the program with the JIT and without,
# against the TUN path (lab/bench-mips.sh).
bench-mips:
	bash lab/bench-mips.sh

bench-plat: build bin/traffic
	@[ "$$(id -u)" = 0 ] || { echo "bench-plat needs root"; exit 1; }
	bash lab/bench-plat.sh

# The failover benchmark lives beside the mesh lab it needs (e2e); its result is the last line.
bench-failover:
	@[ "$$(id -u)" = 0 ] || { echo "bench-failover needs root"; exit 1; }
	BENCH_FAILOVER=1 $(GO) test -count=1 -timeout 30m -run '^TestBenchFailover$$' -v ./e2e > /tmp/bench-failover.log 2>&1 || { cat /tmp/bench-failover.log; exit 1; }
	@grep -E '^failover ' /tmp/bench-failover.log
	@grep -E '^bench-failover:' /tmp/bench-failover.log

# The roaming benchmark lives beside the roaming lab (e2e); its result is the last line.
bench-roam:
	@[ "$$(id -u)" = 0 ] || { echo "bench-roam needs root"; exit 1; }
	BENCH_ROAM=1 $(GO) test -count=1 -timeout 20m -run '^TestBenchRoam$$' -v ./e2e > /tmp/bench-roam.log 2>&1 || { cat /tmp/bench-roam.log; exit 1; }
	@grep -E "^(roam|move)" /tmp/bench-roam.log
	@grep -E '^bench-roam:' /tmp/bench-roam.log

# Each daemon's memory (RSS, Go runtime) after 60 s of traffic through the
# mesh: a 32-bit build (as mips_24kc) and the native one; the last line sums up.
bench-mem:
	@[ "$$(id -u)" = 0 ] || { echo "bench-mem needs root"; exit 1; }
	BENCH_MEM=1 $(GO) test -count=1 -timeout 20m -run '^TestBenchMemory$$' -v ./e2e > /tmp/bench-mem.log 2>&1 || { cat /tmp/bench-mem.log; exit 1; }
	@grep -E '^memory ' /tmp/bench-mem.log
	@grep -E '^bench-mem:' /tmp/bench-mem.log

bench-clat: build bin/traffic
	@[ "$$(id -u)" = 0 ] || { echo "bench-clat needs root"; exit 1; }
	$(GO) test -run '^$$' -bench . -benchmem ./siit | grep -E '^Benchmark'
	bash lab/bench-clat.sh

# The narrated mesh demo (TestDemo in e2e, also run by make test). KEEP=1 leaves it up.
demo:
	bash lab/demo.sh

deps:
	bash lab/deps.sh

clean:
	rm -rf bin dist

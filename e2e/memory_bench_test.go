package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gluon-464xlat/gluon-464xlat/internal/ctlsock"
	"github.com/gluon-464xlat/gluon-464xlat/internal/netlab"
)

// TestBenchMemory is `make bench-mem`, not a test: each daemon's memory
// after SECONDS (default 60) of traffic through the roaming mesh lab (a
// TCP download and UDP echoes from the client through node1 and exit1),
// reported as the process's RSS and what the Go runtime obtained from the
// kernel ("memory" on its socket). Four runs: a 32-bit build (GOARCH=386
// with the Go of OpenWrt 23.05: pointers and heap as on mips_24kc) and the
// native one, each with Go's default GC and with a tighter one. The mips build itself does not run under qemu-user 7.2
// (Debian 12): qemu fails route netlink's link messages (EINVAL) and has no
// translation for rule messages (clatd's ip rule: EOPNOTSUPP) or netfilter
// netlink (l3roamd, platd).
func TestBenchMemory(t *testing.T) {
	benchRuns(t, "BENCH_MEM", "make bench-mem", 1, 1)
	secs := 60
	if s, err := strconv.Atoi(os.Getenv("SECONDS")); err == nil && s > 0 {
		secs = s
	}
	native := binDir
	b32 := filepath.Join(binDir, "386")
	for _, d := range []string{"clatd", "platd", "prefixd", "l3roamd"} {
		build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", filepath.Join(b32, d), "../cmd/"+d)
		build.Env = append(os.Environ(), "GOTOOLCHAIN=go1.21.13", "GOARCH=386", "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("386 build: %v\n%s", err, out)
		}
	}
	defer func() { binDir = native }()
	rss := map[string]string{}
	for _, c := range []struct {
		name  string
		bin   string
		tuned bool
	}{{"386", b32, false}, {"386 tuned", b32, true}, {"amd64", native, false}, {"amd64 tuned", native, true}} {
		binDir = c.bin
		// The daemons inherit the test's environment.
		if c.tuned {
			os.Setenv("GOGC", initGOGC)
			os.Setenv("GOMEMLIMIT", initGOMEMLIMIT)
		} else {
			os.Unsetenv("GOGC")
			os.Unsetenv("GOMEMLIMIT")
		}
		t.Run(c.name, func(t *testing.T) { rss[c.name] = memoryRun(t, c.name, secs) })
	}
	os.Unsetenv("GOGC")
	os.Unsetenv("GOMEMLIMIT")
	fmt.Printf("bench-mem: 32-bit build (386, Go 1.21.13) after %d s of traffic, RSS KiB: %s\n", secs, rss["386"])
}

// A tighter GC than Go's default, measured against it for the init
// scripts: two 60 s runs gave 1.4 MiB and 0.07 MiB less RSS summed over the
// four daemons of the 32-bit build, within the runs' own spread (the heaps
// stay near the 4 MiB below which Go's default GC hardly runs), so the init
// scripts leave Go's defaults.
const initGOGC, initGOMEMLIMIT = "50", "16MiB"

// memoryRun runs the mesh with traffic for secs seconds and prints each
// daemon's memory; it returns "daemon=RSS ..." of the four.
func memoryRun(t *testing.T, name string, secs int) string {
	l := newRoamLabAtNode1(t, roamOpts{})
	l.daemon(t, l.node1, "prefixd", "-plat-range", meshPLATRange, "-babel", l.sock["babeld@"+l.node1],
		"-clatd-socket", l.sock["clatd@"+l.node1], "-l3roamd-socket", l.sock["l3roamd@"+l.node1],
		"-probe-src", "fddd:1337:1337::1:c000:2")
	const rate = 1 << 20
	fetch, _ := startDownload(t, l.Lab, l.inet, l.client, "mem", "198.51.100.1:5001", rate*secs, rate)
	l.Start(l.inet, "udp-echo", netlab.Helper("udp-echo", "198.51.100.1:5002")...)
	for end := time.Now().Add(time.Duration(secs) * time.Second); time.Now().Before(end); {
		l.Run(l.client, netlab.Helper("udp-ping", "198.51.100.1:5002", "1200", "50")...)
	}
	if fetch.Exited() && !finished(fetch, rate*secs, 0) {
		t.Errorf("the download failed: %s", fetch.Log())
	}
	var sum []string
	for _, d := range []string{"clatd@" + l.node1, "prefixd@" + l.node1, "l3roamd@" + l.node1, "platd@" + l.exit1} {
		daemon, _, _ := strings.Cut(d, "@")
		out, err := ctlsock.Query(l.sock[d], "memory")
		var m ctlsock.Memory
		if err == nil {
			err = json.Unmarshal([]byte(out), &m)
		}
		if err != nil {
			t.Fatalf("%s memory: %v %s", d, err, out)
		}
		rss := l.procs[d].RSS()
		fmt.Printf("memory %-12s %-8s rss=%5d KiB go_sys=%5d KiB heap_inuse=%5d KiB gc=%d goroutines=%d\n",
			name, daemon, rss, m.Sys/1024, m.HeapInuse/1024, m.NumGC, m.Goroutines)
		sum = append(sum, fmt.Sprintf("%s=%d", daemon, rss))
	}
	return strings.Join(sum, " ")
}

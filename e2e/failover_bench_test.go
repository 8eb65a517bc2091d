package e2e

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gluon-464xlat/gluon-464xlat/internal/ctlsock"
	"github.com/gluon-464xlat/gluon-464xlat/internal/netlab"
)

// TestBenchFailover is `make bench-failover`, not a test: the gap in ms
// between the chosen exit dying and the client's IPv4 working again through
// the other, over RUNS runs, for a silent death (the exit's mesh link cut,
// no retraction) and a clean stop (platd stopped).
func TestBenchFailover(t *testing.T) {
	runs := benchRuns(t, "BENCH_FAILOVER", "make bench-failover", 5, 1)
	l := newMeshLab(t)
	// A smaller margin than the default so that prefixd returns to the
	// nearer exit between runs (96 vs 192).
	l.start(t, "-threshold-abs", "50", "-hold-down", "2s")
	// Bound to the server address, so replies leave from it (it sits on lo).
	l.Start(l.inet, "udp-echo", netlab.Helper("udp-echo", "198.51.100.1:5002")...)
	l.waitPLAT(t, meshP1, 20*time.Second)
	var silent, clean []float64
	for i := 0; i < runs; i++ {
		silent = append(silent, l.measureGap(t, func() {
			l.Must(l.exit1, "ip", "link", "set", "m-n1", "down")
			l.Must(l.exit1, "ip", "link", "set", "m-n1b", "down")
		}, func() {
			l.Must(l.exit1, "ip", "link", "set", "m-n1", "up")
			l.Must(l.exit1, "ip", "link", "set", "m-n1b", "up")
		}))
		clean = append(clean, l.measureGap(t, func() {
			l.procs["platd@"+l.exit1].Stop()
		}, func() {
			l.daemon(t, l.exit1, "platd", "-plat-prefix", meshP1, "-clat-range", "fddd:1337:1337::/48", "-wan-dev", "wan", "-allow", "198.51.100.0/24")
		}))
	}
	sm, sx := medianMax(silent)
	cm, cx := medianMax(clean)
	fmt.Printf("failover silent death (mesh link cut): %v ms -> median %.0f max %.0f\n", silent, sm, sx)
	fmt.Printf("failover clean stop (platd stopped):   %v ms -> median %.0f max %.0f\n", clean, cm, cx)
	fmt.Printf("bench-failover: median_ms=%.0f max_ms=%.0f\n", sm, sx)
}

// measureGap sends a datagram every 20 ms from the client, kills the current exit and
// returns the time from the last reply before the kill to the first one
// after it; then revives the exit and waits for prefixd to come back to it.
func (l *meshLab) measureGap(t *testing.T, kill, revive func()) float64 {
	if !netlab.WaitFor(10*time.Second, func() bool {
		c, _ := ctlsock.Query(l.sock["clatd@"+l.node1], "get_platprefix")
		return c == meshP1
	}) || l.exitCarries(t) != "exit1" {
		t.Fatal("traffic does not go through exit1 before the kill")
	}
	ping := l.Start(l.client, "udp-stream", netlab.Helper("udp-stream", "198.51.100.1:5002", "25")...)
	time.Sleep(time.Second)
	killed := float64(time.Now().UnixMicro()) / 1e6
	kill()
	if !netlab.WaitFor(12*time.Second, func() bool { return l.current(t) == meshP2 }) {
		t.Fatalf("no failover to P2")
	}
	time.Sleep(2 * time.Second) // let replies through the new exit show
	gap, recovered := outage(ping.Log(), killed)
	if !recovered {
		clat, _ := ctlsock.Query(l.sock["clatd@"+l.node1], "get_platprefix")
		t.Fatalf("no replies after the exit died (clatd on %s):\n%s", clat, tailOf(ping.Log(), 600))
	}
	ping.Stop()
	revive()
	l.waitPLAT(t, meshP1, 30*time.Second)
	time.Sleep(time.Second)
	return gap
}

// outage reads udp-stream's output (ping -D's format) and returns the
// longest time without a reply, in ms, from the last reply before killed on
// (the kill command itself takes some ms to act), and whether replies came
// back after it.
func outage(out string, killed float64) (float64, bool) {
	var ts []float64
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, "bytes from") || !strings.HasPrefix(line, "[") {
			continue
		}
		v, err := strconv.ParseFloat(line[1:strings.Index(line, "]")], 64)
		if err == nil {
			ts = append(ts, v)
		}
	}
	start := -1
	for i, v := range ts {
		if v <= killed {
			start = i
		}
	}
	if start < 0 || start == len(ts)-1 {
		return 0, false
	}
	var gap float64
	end := 0
	for i := start; i+1 < len(ts); i++ {
		if d := ts[i+1] - ts[i]; d > gap {
			gap, end = d, i+1
		}
	}
	// Recovered: replies keep coming after the longest gap.
	return gap * 1000, len(ts)-end >= 10
}

func tailOf(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// benchRuns skips the benchmark unless env is set (by target), and returns
// how many runs to make: RUNS if it is at least min, else def.
func benchRuns(t *testing.T, env, target string, def, min int) int {
	if os.Getenv(env) == "" {
		t.Skip("benchmark: run with " + target)
	}
	if n, err := strconv.Atoi(os.Getenv("RUNS")); err == nil && n >= min {
		return n
	}
	return def
}

func medianMax(v []float64) (float64, float64) {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2], s[len(s)-1]
}

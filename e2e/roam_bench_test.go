package e2e

import (
	"bufio"
	"fmt"
	"math/rand"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gluon-464xlat/gluon-464xlat/internal/netlab"
)

// TestBenchRoam is `make bench-roam`, not a test: in a mesh of 16 nodes
// (BENCH_ROAM_NODES for more; random graph of average degree 3), a client
// with a running TCP download (500 kB/s, a chunk every 20 ms) moves RUNS
// times (at least 10) between nodes at least 3 hops apart; for each move,
// the ms from the client's port coming up at the new node (and, apart,
// from its leaving the old one) to the first byte that arrives through the
// new node (the read after the longest pause), and the steps in between
// from the daemons' logs.
func TestBenchRoam(t *testing.T) {
	runs := benchRuns(t, "BENCH_ROAM", "make bench-roam", 12, 10)
	n := bigMeshSize()
	r := rand.New(rand.NewSource(464))
	m := newBigMesh(t, n, 464, 0)
	tour := m.farTour(r, 0, runs, 3)
	hops := m.hops()
	const rate = 500000
	total := rate * (runs*5 + 8)
	fetch, progress := startDownload(t, m.Lab, m.inet, m.client, "bench", "198.51.100.1:5001", total, rate)
	time.Sleep(3 * time.Second)
	// A move is two steps: the port leaves the old node (detach) and is
	// up on the new node's client bridge (attach); the daemons can act
	// from the attach on, the client is cut off from the detach.
	var detach, moves []time.Time
	var dist []int
	for i := 1; i < len(tour); i++ {
		dist = append(dist, hops[tour[i-1]][tour[i]])
		left, arrived := m.moveTo(t, tour[i])
		detach, moves = append(detach, left), append(moves, arrived)
		time.Sleep(5 * time.Second)
	}
	netlab.WaitFor(60*time.Second, fetch.Exited)
	if !strings.Contains(fetch.Log(), fmt.Sprintf("ok %d bytes", total)) {
		t.Fatalf("the download did not survive %d roams: %s", runs, fetch.Log())
	}
	reads := readProgress(t, progress)
	var gaps, whole []float64
	for i, mv := range moves {
		until := mv.Add(4 * time.Second) // the next move is 5 s later
		gaps = append(gaps, firstByteAfter(reads, mv, until))
		whole = append(whole, firstByteAfter(reads, detach[i], until))
	}
	med, mx := medianMax(gaps)
	wmed, wmx := medianMax(whole)
	// where the time goes, from the daemons' logs
	fmt.Print(roamSteps(m.roamEvents(), moves, gaps))
	fmt.Printf("roam tour over %d nodes: %v, hops %v\n", n, tour, dist)
	fmt.Printf("roam gaps (attach -> first byte through the new node): %v ms\n", gaps)
	fmt.Printf("roam gaps (detach -> first byte): %v ms\n", whole)
	fmt.Printf("bench-roam: nodes=%d roams=%d median_ms=%.0f max_ms=%.0f detach_median_ms=%.0f detach_max_ms=%.0f\n", n, runs, med, mx, wmed, wmx)
}

func readProgress(t *testing.T, path string) []time.Time {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []time.Time
	s := bufio.NewScanner(f)
	for s.Scan() {
		var ns, n int64
		if _, err := fmt.Sscan(s.Text(), &ns, &n); err == nil {
			out = append(out, time.Unix(0, ns))
		}
	}
	return out
}

// firstByteAfter finds the longest pause between reads from the move until
// until and returns the ms from the move to the read that ended it (bytes
// read just after the move were still in the socket buffer).
func firstByteAfter(reads []time.Time, move, until time.Time) float64 {
	var best time.Duration
	var end time.Time
	for i := 1; i < len(reads); i++ {
		if reads[i].Before(move) || reads[i].After(until) {
			continue
		}
		if gap := reads[i].Sub(maxTime(reads[i-1], move)); gap > best {
			best, end = gap, reads[i]
		}
	}
	return float64(end.Sub(move).Milliseconds())
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

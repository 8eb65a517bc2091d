package e2e

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gluon-464xlat/gluon-464xlat/internal/netlab"
)

// bigMesh is a Babel mesh of this project's daemons the size of a small
// community: n nodes on a random connected graph of average degree 3 (a
// random spanning tree plus random extra links, from a fixed seed so that
// runs compare), each with babeld, clatd and l3roamd and a client bridge
// as a Gluon node has; one exit (platd P1, l3roamd as its PLAT) behind
// node 0 with the internet behind it; and a client whose port moves
// between the nodes' client bridges.
type bigMesh struct {
	*meshLab
	nodes []string // namespaces
	adj   [][]int
	at    int // the node the client is at
}

func bigCLAT(i int) string { return fmt.Sprintf("fddd:1337:1337::%x:0:0/96", i+1) }

// newBigMesh builds and starts the mesh and waits until the client at
// node start reaches the internet through it.
func newBigMesh(t *testing.T, n int, seed int64, start int) *bigMesh {
	m := &bigMesh{meshLab: &meshLab{Lab: netlab.New(t), sock: map[string]string{}, procs: map[string]*netlab.Proc{}}}
	l := m.meshLab
	r := rand.New(rand.NewSource(seed))
	m.adj = make([][]int, n)
	linked := map[[2]int]bool{}
	link := func(a, b int) {
		if a == b || linked[[2]int{min(a, b), max(a, b)}] {
			return
		}
		linked[[2]int{min(a, b), max(a, b)}] = true
		m.adj[a], m.adj[b] = append(m.adj[a], b), append(m.adj[b], a)
	}
	for i := 1; i < n; i++ {
		link(i, r.Intn(i))
	}
	for len(linked) < 3*n/2 {
		link(r.Intn(n), r.Intn(n))
	}
	for i := 0; i < n; i++ {
		ns := l.NS(fmt.Sprintf("b%d", i))
		m.nodes = append(m.nodes, ns)
		l.Must(ns, "ip", "link", "add", "br-client", "address", gatewayMAC, "type", "bridge")
		l.Must(ns, "ip", "addr", "add", "10.130.0.1/16", "dev", "br-client")
		l.Must(ns, "ip", "addr", "add", meshClientGW6+"/64", "dev", "br-client", "nodad")
		l.Must(ns, "ip", "link", "set", "br-client", "up")
		l.Must(ns, "ip", "addr", "add", fmt.Sprintf("%s%x/128", meshNodeIPs, i+1), "dev", "lo")
		l.Forwarding(ns)
	}
	for k := range linked {
		l.Link(m.nodes[k[0]], fmt.Sprintf("m-%d", k[1]), m.nodes[k[1]], fmt.Sprintf("m-%d", k[0]))
	}
	l.exit1, l.inet, l.client = l.NS("x1"), l.NS("i"), l.NS("c")
	l.Link(m.nodes[0], "m-x1", l.exit1, "m-n0")
	l.Link(l.exit1, "wan", l.inet, "i1")
	l.Forwarding(l.exit1)
	l.Forwarding(l.inet)
	l.Must(l.exit1, "ip", "addr", "add", meshNodeIPs+"ff/128", "dev", "lo")
	l.Must(l.inet, "ip", "addr", "add", "198.51.100.1/32", "dev", "lo")
	l.Must(l.exit1, "ip", "addr", "add", "203.0.113.2/30", "dev", "wan")
	l.Must(l.inet, "ip", "addr", "add", "203.0.113.1/30", "dev", "i1")
	l.Must(l.exit1, "ip", "route", "add", "198.51.100.1/32", "via", "203.0.113.1")
	l.Must(l.exit1, "sh", "-c", "nft add table inet fw4 && nft add chain inet fw4 srcnat '{ type nat hook postrouting priority srcnat; }'")

	m.at = start
	l.Link(l.client, "c0", m.nodes[start], "cl-port")
	l.Must(l.client, "ip", "link", "set", "c0", "address", clientMAC)
	l.Must(l.client, "ip", "addr", "add", "10.130.0.10/16", "dev", "c0")
	l.Must(l.client, "ip", "route", "add", "default", "via", "10.130.0.1")
	l.Must(m.nodes[start], "ip", "link", "set", "cl-port", "master", "br-client")

	key := filepath.Join(l.Dir, "roam.key")
	os.WriteFile(key, []byte("the roaming key of the lab\n"), 0o600)
	common := []string{"-node-client-prefix", meshNodeCli, "-client-prefix", meshClients6, "-clat-range", "fddd:1337:1337::/48",
		"-plat-range", meshPLATRange, "-roam-key-file", key}
	for i, ns := range m.nodes {
		var ifs []string
		for _, j := range m.adj[i] {
			ifs = append(ifs, fmt.Sprintf("m-%d", j))
		}
		if i == 0 {
			ifs = append(ifs, "m-x1")
		}
		l.babeld(t, ns, ifs...)
		l.daemon(t, ns, "clatd", "-clat-prefix", bigCLAT(i), "-plat-prefix", meshP1, "-client-net", "10.130.0.0/16", "-client-dev", "br-client")
		l.daemon(t, ns, "l3roamd", append([]string{"-node-ip", fmt.Sprintf("%s%x", meshNodeIPs, i+1), "-client-dev", "br-client",
			"-mesh-ifs", strings.Join(ifs, ","), "-clat-prefix", bigCLAT(i), "-plat-prefix", meshP1}, common...)...)
	}
	l.babeld(t, l.exit1, "m-n0")
	l.daemon(t, l.exit1, "platd", "-plat-prefix", meshP1, "-clat-range", "fddd:1337:1337::/48", "-wan-dev", "wan", "-allow", "198.51.100.0/24")
	l.daemon(t, l.exit1, "l3roamd", append([]string{"-node-ip", meshNodeIPs + "ff", "-client-dev", "", "-mesh-ifs", "m-n0", "-own-plat", meshP1}, common...)...)
	// Every node's CLAT /96 and node IP at the exit, the PLAT at every node.
	if !netlab.WaitFor(90*time.Second, func() bool {
		x, _ := l.Run(l.exit1, "ip", "-6", "route")
		for i := range m.nodes {
			if !strings.Contains(x, strings.TrimSuffix(bigCLAT(i), "/96")) || !strings.Contains(x, fmt.Sprintf("%s%x ", meshNodeIPs, i+1)) {
				return false
			}
		}
		for _, ns := range m.nodes {
			if r, _ := l.Run(ns, "ip", "-6", "route", "show", meshP1); r == "" {
				return false
			}
		}
		return true
	}) {
		x, _ := l.Run(l.exit1, "ip", "-6", "route")
		t.Fatalf("the mesh of %d did not converge in 90 s; the exit's routes:\n%s", n, x)
	}
	l.reach(t, l.client, "198.51.100.1")
	return m
}

// hops is the shortest path between every pair of nodes (breadth first).
func (m *bigMesh) hops() [][]int {
	d := make([][]int, len(m.adj))
	for s := range m.adj {
		d[s] = make([]int, len(m.adj))
		for i := range d[s] {
			d[s][i] = -1
		}
		d[s][s] = 0
		for q := []int{s}; len(q) > 0; q = q[1:] {
			for _, j := range m.adj[q[0]] {
				if d[s][j] < 0 {
					d[s][j] = d[s][q[0]] + 1
					q = append(q, j)
				}
			}
		}
	}
	return d
}

// farTour is a sequence of runs+1 nodes starting at start, each at least
// minHops from the one before (the farthest there is when no node is that
// far), chosen with r.
func (m *bigMesh) farTour(r *rand.Rand, start, runs, minHops int) []int {
	d := m.hops()
	tour := []int{start}
	for len(tour) <= runs {
		cur := tour[len(tour)-1]
		var far []int
		best := 0
		for j, h := range d[cur] {
			if h >= minHops {
				far = append(far, j)
			}
			if h > d[cur][best] {
				best = j
			}
		}
		if len(far) == 0 {
			far = []int{best}
		}
		tour = append(tour, far[r.Intn(len(far))])
	}
	return tour
}

// moveTo moves the client's port to node j's client bridge and reports
// when it left the old node and when it was up on the new one.
func (m *bigMesh) moveTo(t *testing.T, j int) (left, arrived time.Time) {
	t.Helper()
	mv, err := m.PreparePortMove(m.nodes[m.at], m.nodes[j], "cl-port", "br-client")
	if err != nil {
		t.Fatal(err)
	}
	if left, arrived, err = mv.Move(); err != nil {
		t.Fatalf("moving the client to b%d: %v", j, err)
	}
	m.at = j
	return left, arrived
}

// bigMeshSize is BENCH_ROAM_NODES, at least 16 (the default).
func bigMeshSize() int {
	if n, err := strconv.Atoi(os.Getenv("BENCH_ROAM_NODES")); err == nil && n >= 16 {
		return n
	}
	return 16
}

// roamEvent is a handover step an l3roamd logged: when, which node, what.
type roamEvent struct {
	at   time.Time
	node string
	msg  string
}

// roamEvents is every l3roamd's log lines about the client's handovers, in
// time order.
func (m *bigMesh) roamEvents() []roamEvent {
	var evs []roamEvent
	for i, ns := range append(append([]string(nil), m.nodes...), m.exit1) {
		name := fmt.Sprintf("b%d", i)
		if ns == m.exit1 {
			name = "exit"
		}
		for _, line := range strings.Split(m.procs["l3roamd@"+ns].Log(), "\n") {
			f := strings.Fields(line)
			if len(f) < 3 || !strings.HasPrefix(f[0], "time=") {
				continue
			}
			at, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(f[0], "time="))
			if err != nil {
				continue
			}
			for _, msg := range []string{"new client, claiming it", "client roamed away", "client roamed (PLAT)", "serving"} {
				if strings.Contains(line, msg) {
					evs = append(evs, roamEvent{at, name, msg})
				}
			}
		}
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].at.Before(evs[j].at) })
	return evs
}

// roamSteps splits each move's gap: the attach -> the new node claims (it
// saw the client's first frame), -> the old node answers, -> the PLAT moved
// the sessions (after the holder's consent), -> the first byte read.
func roamSteps(evs []roamEvent, moves []time.Time, gaps []float64) string {
	var b strings.Builder
	ms := func(a, z time.Time) string {
		if a.IsZero() || z.IsZero() {
			return "?"
		}
		return fmt.Sprint(z.Sub(a).Milliseconds())
	}
	for i, mv := range moves {
		var claim, answer, plat time.Time
		for _, e := range evs {
			if e.at.Before(mv.Add(-time.Second)) || e.at.After(mv.Add(4*time.Second)) {
				continue
			}
			switch {
			case e.msg == "new client, claiming it" && claim.IsZero():
				claim = e.at
			case e.msg == "client roamed away" && answer.IsZero():
				answer = e.at
			case e.msg == "client roamed (PLAT)" && plat.IsZero():
				plat = e.at
			}
		}
		fmt.Fprintf(&b, "move %d: claim +%s ms, answered +%s, PLAT +%s, first byte at %.0f ms\n", i+1,
			ms(mv, claim), ms(claim, answer), ms(answer, plat), gaps[i])
	}
	return b.String()
}

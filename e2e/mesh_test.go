package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gluon-464xlat/gluon-464xlat/internal/ctlsock"
	"github.com/gluon-464xlat/gluon-464xlat/internal/netlab"
)

// meshLab is the Babel mesh of DESIGN.md section 6:
//
//	      inet (198.51.100.1)
//	     /                \
//	exit1 (platd P1)   exit2 (platd P2)
//	    |                  |
//	node1 (clatd) ----- node2 (clatd)
//	    |
//	  client
//
// with real babeld on every mesh link, redistributing the /96s.
type meshLab struct {
	*netlab.Lab
	active                                   string   // exit1's mesh link to node1 that carries traffic
	platdExtra                               []string // more platd flags (its legacy backend)
	client, node1, node2, exit1, exit2, inet string
	sock                                     map[string]string // daemon@ns -> control socket
	procs                                    map[string]*netlab.Proc
	args                                     map[string][]string // daemon@ns -> its flags, for a restart
}

const (
	meshPLATRange = "fddd:1337:1338::/48"
	meshP1        = "fddd:1337:1338::1:0:0/96"
	meshP2        = "fddd:1337:1338::2:0:0/96"
	meshCLAT1     = "fddd:1337:1337::1:0:0/96"
	meshCLAT2     = "fddd:1337:1337::2:0:0/96"
	meshNodeIPs   = "fddd:1337:1::"    // + n: the nodes' own addresses
	meshNodeCli   = "fddd:1337:2::/64" // node-client IPs (l3roamd)
	meshClients6  = "2001:db8:c::/64"  // the clients' IPv6 network, on every node
	meshClientGW6 = "2001:db8:c::1"
	meshClient6   = "2001:db8:c::10"
)

func newMeshLab(t *testing.T) *meshLab { return newMeshLabWith(t, false) }

// gatewayMAC is next_node.mac: the client bridge of every node has it, so
// a client that roams keeps talking to "its" gateway.
const gatewayMAC = "16:41:95:40:f7:dc"

const clientMAC = "02:c1:1e:00:00:0a"

// newMeshLabWith builds the mesh; with roam, node1 and node2 both have a
// client bridge br-client (same MAC and gateway address), the client's
// veth is a port of node1's, and moveClient moves it to node2's.
func newMeshLabWith(t *testing.T, roam bool) *meshLab {
	l := &meshLab{Lab: netlab.New(t), sock: map[string]string{}, procs: map[string]*netlab.Proc{}}
	l.client, l.node1, l.node2 = l.NS("c"), l.NS("n1"), l.NS("n2")
	l.exit1, l.exit2, l.inet = l.NS("x1"), l.NS("x2"), l.NS("i")
	if roam {
		for _, n := range []string{l.node1, l.node2} {
			l.Must(n, "ip", "link", "add", "br-client", "address", gatewayMAC, "type", "bridge")
			l.Must(n, "ip", "addr", "add", "10.130.0.1/16", "dev", "br-client")
			l.Must(n, "ip", "addr", "add", meshClientGW6+"/64", "dev", "br-client", "nodad")
			l.Must(n, "ip", "link", "set", "br-client", "up")
		}
		l.Link(l.client, "c0", l.node1, "cl-port")
		l.Must(l.client, "ip", "link", "set", "c0", "address", clientMAC)
		l.Must(l.client, "ip", "addr", "add", meshClient6+"/64", "dev", "c0", "nodad")
		l.Must(l.client, "ip", "-6", "route", "add", "default", "via", meshClientGW6)
		l.Must(l.node1, "ip", "link", "set", "cl-port", "master", "br-client")
		// node IPs (the C l3roamd's -a), announced by babeld
		for i, n := range []string{l.node1, l.node2, l.exit1, l.exit2} {
			l.Must(n, "ip", "addr", "add", fmt.Sprintf("%s%d/128", meshNodeIPs, i+1), "dev", "lo")
		}
	} else {
		l.Link(l.client, "c0", l.node1, "br-client")
	}
	l.Link(l.node1, "m-x1", l.exit1, "m-n1")
	l.Link(l.node1, "m-x1b", l.exit1, "m-n1b") // a parallel link, see setCost
	l.Link(l.node1, "m-n2", l.node2, "m-n1")
	l.Link(l.node2, "m-x2", l.exit2, "m-n2")
	l.Link(l.exit1, "wan", l.inet, "i1")
	l.Link(l.exit2, "wan", l.inet, "i2")
	for _, ns := range []string{l.node1, l.node2, l.exit1, l.exit2, l.inet} {
		l.Forwarding(ns)
	}
	l.Must(l.client, "ip", "addr", "add", "10.130.0.10/16", "dev", "c0")
	l.Must(l.client, "ip", "route", "add", "default", "via", "10.130.0.1")
	if !roam {
		l.Must(l.node1, "ip", "addr", "add", "10.130.0.1/16", "dev", "br-client")
	}
	l.Must(l.inet, "ip", "addr", "add", "198.51.100.1/32", "dev", "lo")
	for i, x := range []string{l.exit1, l.exit2} {
		a, b := fmt.Sprintf("203.0.113.%d", 4*i+2), fmt.Sprintf("203.0.113.%d", 4*i+1)
		l.Must(x, "ip", "addr", "add", a+"/30", "dev", "wan")
		l.Must(l.inet, "ip", "addr", "add", b+"/30", "dev", fmt.Sprintf("i%d", i+1))
		l.Must(x, "ip", "route", "add", "198.51.100.1/32", "via", b)
		// OpenWrt's fw4 nat chains, as on a real exit.
		l.Must(x, "sh", "-c", "nft add table inet fw4 && nft add chain inet fw4 srcnat '{ type nat hook postrouting priority srcnat; }'")
	}
	return l
}

// babeld starts babeld in ns on its mesh interfaces, with the local
// interface on a unix socket, 1 s hellos and kernel metrics = Babel metrics.
func (l *meshLab) babeld(t *testing.T, ns string, ifs ...string) {
	var conf []string
	if ns == l.exit1 {
		// The parallel link starts priced out (see setCost).
		conf = []string{"-C", "interface m-n1b rxcost 2000"}
	}
	sock := filepath.Join(l.Dir, "babel-"+ns+".sock")
	args := []string{"babeld", "-I", filepath.Join(l.Dir, "babel-"+ns+".pid"), "-S", filepath.Join(l.Dir, "babel-"+ns+".state"),
		"-h", "1", "-H", "1",
		"-C", "local-path-readwrite " + sock, "-C", "reflect-kernel-metric true",
		// Route choice on the metric now: babeld smooths metrics over 4 s by
		// default, and keeps a route it just saw at 65535 for that long even
		// when a parallel link is fine (see setCost).
		"-C", "smoothing-half-life 0",
		"-C", "redistribute ip fddd:1337:1337::/48 eq 96 allow", "-C", "redistribute ip " + meshPLATRange + " eq 96 allow",
		"-C", "redistribute ip " + meshClients6 + " eq 128 allow",
		// l3roamd's legacy backend: a roamed client's home address
		"-C", "redistribute ip fddd:1337:1337::/48 eq 128 proto 158 allow",
		"-C", "redistribute local ip fddd:1337:1::/64 eq 128 allow", "-C", "redistribute local ip " + meshNodeCli + " eq 128 allow",
		"-C", "redistribute local deny", "-C", "redistribute deny"}
	l.procs["babeld@"+ns] = l.Start(ns, "babeld-"+ns, append(append(args, conf...), ifs...)...)
	l.sock["babeld@"+ns] = sock
	if !netlab.WaitFor(5*time.Second, func() bool {
		_, err := l.Run(ns, "sh", "-c", "printf 'quit\n' | nc -NU "+sock)
		return err == nil
	}) {
		t.Fatalf("babeld in %s did not open its socket", ns)
	}
	if _, ok := l.procs["monitor@"+ns]; (ns == l.node1 || ns == l.exit1) && !ok {
		// What node1's babeld said and when, for a failing test's report.
		// (again after babeld restarts: the loop reconnects)
		l.procs["monitor@"+ns] = l.Start(ns, "babel-monitor-"+ns, "sh", "-c",
			"while :; do (printf 'monitor\\n'; sleep 3600) | nc -U "+sock+"; sleep 0.2; done | while IFS= read -r l; do echo \"$(date +%T.%N) $l\"; done")
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("babeld monitor on %s:\n%s", ns, l.procs["monitor@"+ns].Log())
			}
		})
	}
}

func (l *meshLab) daemon(t *testing.T, ns, name string, args ...string) {
	if l.args == nil {
		l.args = map[string][]string{}
	}
	if name == "l3roamd" && !slices.Contains(args, "-clatd-socket") {
		// the clatd of its node ("": none runs there)
		args = append(args, "-clatd-socket", l.sock["clatd@"+ns])
	}
	l.args[name+"@"+ns] = args
	sock := filepath.Join(l.Dir, name+"-"+ns+".sock")
	l.procs[name+"@"+ns] = l.Start(ns, name+"-"+ns, append([]string{bin(name), "-socket", sock}, args...)...)
	l.sock[name+"@"+ns] = sock
	waitUp(t, sock, l.procs[name+"@"+ns])
}

// babelCmd sends configuration lines to babeld's local interface.
func (l *meshLab) babelCmd(t *testing.T, ns string, lines ...string) {
	t.Helper()
	l.T(t).Must(ns, "sh", "-c", fmt.Sprintf("printf '%s\\nquit\\n' | nc -NU %s", strings.Join(lines, "\\n"), l.sock["babeld@"+ns]))
}

// setCost makes node1's path to exit1 cost c without an outage. babeld
// 1.13 changes a link's cost at run time only by re-creating the interface,
// and to the neighbour a re-created interface is a rebooted one (a new hello
// seqno): node1 keeps its route over that link installed at metric 65535
// until two hellos got through, though the parallel link is fine (seen in
// CI under load: over 2 s, and prefixd rightly left an unreachable P1). So
// the cost is set on the idle one of two parallel links first; then the
// busy link is taken down at both ends (babeld sees its own interface go
// down at once, not its peer's carrier loss), which moves both directions to
// the idle link at once (route_lost); it is priced out while down and comes
// back up. Each step waits for what the babelds report, not for a fixed time.
func (l *meshLab) setCost(t *testing.T, c int) {
	t.Helper()
	idle := "m-n1b"
	if l.active == "m-n1b" {
		idle = "m-n1"
	}
	// node1's name for the same link
	mine := map[string]string{"m-n1": "m-x1", "m-n1b": "m-x1b"}
	l.babelCmd(t, l.exit1, "flush interface "+idle, fmt.Sprintf("interface %s rxcost %d", idle, c))
	l.waitRoute(t, meshP1, mine[idle], c, false)
	// and the way back (node1's rxcost is 96 on both links)
	l.waitRouteIn(t, l.exit1, meshCLAT1, idle, 96, false)
	l.T(t).Must(l.exit1, "ip", "link", "set", l.active, "down")
	l.T(t).Must(l.node1, "ip", "link", "set", mine[l.active], "down")
	l.waitRoute(t, meshP1, mine[idle], c, true)
	l.waitRouteIn(t, l.exit1, meshCLAT1, idle, 96, true)
	l.babelCmd(t, l.exit1, "flush interface "+l.active, fmt.Sprintf("interface %s rxcost 2000", l.active))
	l.T(t).Must(l.node1, "ip", "link", "set", mine[l.active], "up")
	l.T(t).Must(l.exit1, "ip", "link", "set", l.active, "up")
	l.active = idle
}

// waitRoute waits until babeld on node1 has a route to prefix over its
// interface dev with the given metric (and, with installed, selected).
func (l *meshLab) waitRoute(t *testing.T, prefix, dev string, metric int, installed bool) {
	t.Helper()
	l.waitRouteIn(t, l.node1, prefix, dev, metric, installed)
}

// waitRouteIn is waitRoute for the babeld in namespace ns.
func (l *meshLab) waitRouteIn(t *testing.T, ns, prefix, dev string, metric int, installed bool) {
	t.Helper()
	want := fmt.Sprintf(" metric %d ", metric)
	var dump string
	if !netlab.WaitFor(15*time.Second, func() bool {
		dump, _ = l.Run(ns, "sh", "-c", "printf 'dump\nquit\n' | nc -NU "+l.sock["babeld@"+ns])
		for _, line := range strings.Split(dump, "\n") {
			if strings.HasPrefix(line, "add route ") && strings.Contains(line, " prefix "+prefix+" ") &&
				strings.HasSuffix(line, " if "+dev) && strings.Contains(line, want) &&
				(!installed || strings.Contains(line, " installed yes ")) {
				return true
			}
		}
		return false
	}) {
		t.Fatalf("%s's babeld has no route to %s over %s at metric %d (installed %v):\n%s", ns, prefix, dev, metric, installed, dump)
	}
}

// startMesh starts babeld everywhere and platd on both exits.
func (l *meshLab) startMesh(t *testing.T) {
	l.babeld(t, l.node1, "m-x1", "m-x1b", "m-n2")
	l.babeld(t, l.node2, "m-n1", "m-x2")
	l.babeld(t, l.exit1, "m-n1", "m-n1b")
	l.active = "m-n1"
	l.babeld(t, l.exit2, "m-n2")
	for _, x := range []struct{ ns, plat string }{{l.exit1, meshP1}, {l.exit2, meshP2}} {
		l.daemon(t, x.ns, "platd", append([]string{"-plat-prefix", x.plat, "-clat-range", "fddd:1337:1337::/48", "-wan-dev", "wan", "-allow", "198.51.100.0/24"}, l.platdExtra...)...)
	}
}

// waitConverged waits until node1 knows both PLATs at their final metrics
// and the exits know the way back to node1's CLAT prefix.
func (l *meshLab) waitConverged(t *testing.T) {
	if !netlab.WaitFor(30*time.Second, func() bool {
		n1, _ := l.Run(l.node1, "ip", "-6", "route")
		x1, _ := l.Run(l.exit1, "ip", "-6", "route", "show", meshCLAT1)
		x2, _ := l.Run(l.exit2, "ip", "-6", "route", "show", meshCLAT1)
		return strings.Contains(n1, meshP1+" via") && strings.Contains(n1, "dev m-x1 proto babel metric 96 ") &&
			strings.Contains(n1, meshP2+" via") && strings.Contains(n1, "metric 192 ") && x1 != "" && x2 != ""
	}) {
		out, _ := l.Run(l.node1, "ip", "-6", "route")
		t.Fatalf("the mesh did not converge:\n%s", out)
	}
}

func (l *meshLab) start(t *testing.T, prefixdArgs ...string) {
	l.startMesh(t)
	l.daemon(t, l.node1, "clatd", "-clat-prefix", meshCLAT1, "-client-net", "10.130.0.0/16", "-client-dev", "br-client")
	l.daemon(t, l.node2, "clatd", "-clat-prefix", meshCLAT2, "-client-net", "10.131.0.0/16")
	// Start prefixd on a converged mesh (its start-up settling is unit-tested).
	l.waitConverged(t)
	args := append([]string{"-plat-range", meshPLATRange, "-babel", l.sock["babeld@"+l.node1], "-clatd-socket", l.sock["clatd@"+l.node1],
		"-l3roamd-socket", "", "-probe-src", "fddd:1337:1337::1:c000:2", "-threshold-abs", "150", "-threshold-rel", "0",
		"-hold-down", "3s", "-dwell", "1s"}, prefixdArgs...)
	l.daemon(t, l.node1, "prefixd", args...)
}

func (l *meshLab) current(t *testing.T) string {
	out, _ := ctlsock.Query(l.sock["prefixd@"+l.node1], "get_platprefix")
	return out
}

func (l *meshLab) waitPLAT(t *testing.T, want string, within time.Duration) {
	t.Helper()
	if !netlab.WaitFor(within, func() bool { return l.current(t) == want }) {
		out, _ := ctlsock.Query(l.sock["prefixd@"+l.node1], "status")
		t.Fatalf("prefixd chose %q, want %q within %s; status: %s", l.current(t), want, within, out)
	}
}

// exitCarries reports which exit's platd translated the client's ping.
func (l *meshLab) exitCarries(t *testing.T) string { t.Helper(); return l.exitOf(t, l.client) }

// exitOf reports which exit's platd translated the pings of the client in ns.
func (l *meshLab) exitOf(t *testing.T, client string) string {
	t.Helper()
	count := func(ns string) float64 { // a dead exit carries nothing; the TUN's and the fast path's
		out, err := ctlsock.Query(l.sock["platd@"+ns], "status")
		var st struct {
			Counters struct {
				Out6to4 float64 `json:"out_6to4"`
			} `json:"counters"`
			Fast struct {
				Fast6to4 float64 `json:"fast_6to4"`
			} `json:"fastpath_counters"`
		}
		if err != nil || json.Unmarshal([]byte(out), &st) != nil {
			return 0
		}
		return st.Counters.Out6to4 + st.Fast.Fast6to4
	}
	// The mesh may still be converging (a restarted babeld): wait for a
	// working path first, then count a clean round of three.
	var out string
	netlab.WaitFor(15*time.Second, func() bool {
		out, _ = l.Run(client, "ping", "-c", "1", "-W", "1", "198.51.100.1")
		return strings.Contains(out, " 0% packet loss")
	})
	a1, a2 := count(l.exit1), count(l.exit2)
	out, _ = l.Run(client, "ping", "-c", "3", "-i", "0.2", "-W", "2", "198.51.100.1")
	if !strings.Contains(out, " 0% packet loss") {
		t.Fatalf("client ping:\n%s", out)
	}
	b1, b2 := count(l.exit1), count(l.exit2)
	switch {
	case b1-a1 >= 3 && b2 == a2:
		return "exit1"
	case b2-a2 >= 3 && b1 == a1:
		return "exit2"
	}
	return fmt.Sprintf("both? exit1 +%v exit2 +%v", b1-a1, b2-a2)
}

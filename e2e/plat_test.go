package e2e

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gluon-464xlat/gluon-464xlat/internal/ctlsock"
	"github.com/gluon-464xlat/gluon-464xlat/internal/netlab"
)

const (
	clatRange = "fddd:1337:1337::/48"
	nodeOwn6  = "fddd:1337:1337:ffff::1"                  // a CLAT-range address of the node itself
	platMgmt  = "fddd:1337:1338:1234:5678:9abc:c000:1"    // PLAT::192.0.0.1
	router4   = "fddd:1337:1338:1234:5678:9abc:cb00:7101" // PLAT::203.0.113.1
)

// platLab: client -- node (clatd) -- exit (platd) -- r4 (IPv4 router) -- inet.
// The node also has an address of its own in clat_range, to test the PLAT
// with IPv6 directly.
type platLab struct {
	*clatLab
	exit, r4, inet string
	platd          *netlab.Proc
	psock          string
	pargs          []string
}

func newPlatLab(t *testing.T, extra ...string) *platLab {
	l := &platLab{clatLab: &clatLab{Lab: netlab.New(t)}}
	l.client, l.node, l.exit, l.r4, l.inet = l.NS("c"), l.NS("n"), l.NS("x"), l.NS("r"), l.NS("i")
	l.Link(l.client, "c0", l.node, "n0")
	l.Link(l.node, "n1", l.exit, "x0")
	l.Link(l.exit, "wan0", l.r4, "r0")
	l.Link(l.r4, "r1", l.inet, "i0")
	for _, ns := range []string{l.node, l.exit, l.r4} {
		l.Forwarding(ns)
	}
	l.Must(l.client, "ip", "addr", "add", "10.130.0.10/16", "dev", "c0")
	l.Must(l.client, "ip", "route", "add", "default", "via", "10.130.0.1")
	l.Must(l.node, "ip", "addr", "add", "10.130.0.1/16", "dev", "n0")
	l.Must(l.node, "ip", "addr", "add", "fd00:1::1/64", "dev", "n1")
	l.Must(l.node, "ip", "addr", "add", nodeOwn6+"/128", "dev", "lo")
	l.Must(l.node, "ip", "route", "add", platPrefix, "via", "fd00:1::2", "src", nodeOwn6)
	l.Must(l.exit, "ip", "addr", "add", "fd00:1::2/64", "dev", "x0")
	l.Must(l.exit, "ip", "route", "add", clatRange, "via", "fd00:1::1")
	l.Must(l.exit, "ip", "addr", "add", "203.0.113.2/24", "dev", "wan0")
	l.Must(l.exit, "ip", "route", "add", "default", "via", "203.0.113.1")
	l.Must(l.r4, "ip", "addr", "add", "203.0.113.1/24", "dev", "r0")
	l.Must(l.r4, "ip", "addr", "add", "198.51.100.254/24", "dev", "r1")
	l.Must(l.inet, "ip", "addr", "add", "198.51.100.1/24", "dev", "i0")
	l.Must(l.inet, "ip", "route", "add", "default", "via", "198.51.100.254")

	// The router's own firewall is there on a real exit, with its own
	// masquerading that platd's port range must not collide with: OpenWrt's
	// fw4 (nftables), or legacy iptables on older firmware.
	if legacy(extra) {
		l.Must(l.exit, "iptables-legacy", "-t", "nat", "-A", "POSTROUTING", "-o", "wan0", "-j", "MASQUERADE")
		l.Must(l.exit, "ip6tables-legacy", "-t", "nat", "-L", "-n")
	} else {
		l.Must(l.exit, "sh", "-c", `nft -f - <<'EOF'
table inet fw4 {
	chain srcnat { type nat hook postrouting priority srcnat; oifname "wan0" masquerade; }
	chain dstnat { type nat hook prerouting priority dstnat; }
}
EOF`)
	}
	l.psock = filepath.Join(l.Dir, "platd.sock")
	l.pargs = append([]string{bin("platd"), "-plat-prefix", platPrefix, "-clat-range", clatRange, "-wan-dev", "wan0",
		"-allow", "198.51.100.0/24,203.0.113.0/24", "-socket", l.psock, "-log-level", "debug"}, extra...)
	l.startPlatd(t)
	l.sock = filepath.Join(l.Dir, "clatd.sock")
	l.clatd = l.Start(l.node, "clatd", bin("clatd"), "-clat-prefix", clatPrefix, "-plat-prefix", platPrefix,
		"-client-net", "10.130.0.0/16", "-client-dev", "n0", "-socket", l.sock)
	waitUp(t, l.sock, l.clatd)
	return l
}

func (l *platLab) startPlatd(t *testing.T) {
	l.platd = l.Start(l.exit, "platd", l.pargs...)
	waitUp(t, l.psock, l.platd)
}

// dumpState logs what a stalled transfer needs explained: the exit's
// conntrack, rules and routes, and both TCP ends.
func (l *platLab) dumpState(t *testing.T) {
	for _, c := range []struct {
		ns   string
		args []string
	}{
		{l.exit, []string{"conntrack", "-L"}},
		{l.exit, []string{"conntrack", "-f", "ipv6", "-L"}},
		{l.exit, []string{"sh", "-c", "nft list ruleset; iptables-legacy-save -c; ip6tables-legacy-save -c"}},
		{l.exit, []string{"sh", "-c", "ip route; ip -6 route"}},
		{l.exit, []string{"nstat", "-as"}},
		{l.client, []string{"ss", "-tinoe"}},
		{l.inet, []string{"ss", "-tinoe"}},
	} {
		out, _ := l.Run(c.ns, c.args...)
		t.Logf("%s %v:\n%s", c.ns, c.args, out)
	}
	t.Logf("platd status: %v\nclatd status: %v", l.pstatus(t), statusOf(t, l.sock))
}

func (l *platLab) pstatus(t *testing.T) map[string]any { return statusOf(t, l.psock) }

// iptablesLegacy selects platd's legacy backend, for firmware without nftables.
var iptablesLegacy = []string{"-backend", "iptables", "-iptables", "/usr/sbin/iptables-legacy"}

func legacy(args []string) bool { return strings.Contains(strings.Join(args, " "), "iptables") }

func TestPLATEndToEnd(t *testing.T)         { platEndToEnd(t) }
func TestPLATEndToEndIPTables(t *testing.T) { platEndToEnd(t, iptablesLegacy...) }

func platEndToEnd(t *testing.T, backend ...string) {
	l := newPlatLab(t, backend...)
	l.StartServer(l.inet, "tcp-serve", netlab.Helper("tcp-serve", "0.0.0.0:5001", "20000000")...)
	l.StartServer(l.inet, "udp-echo", netlab.Helper("udp-echo", "0.0.0.0:5002")...)
	serverViaPLAT := serverPLAT // PLAT::198.51.100.1

	t.Run("ping from a CLAT address", func(t *testing.T) {
		out := l.T(t).Must(l.node, "ping", "-c", "3", "-i", "0.2", "-W", "2", serverViaPLAT)
		if !strings.Contains(out, " 0% packet loss") {
			t.Fatal(out)
		}
	})
	t.Run("management address answers echo", func(t *testing.T) {
		out := l.T(t).Must(l.node, "ping", "-c", "2", "-i", "0.2", "-W", "2", platMgmt)
		if !strings.Contains(out, " 0% packet loss") {
			t.Fatal(out)
		}
	})
	t.Run("tcp byte-exact", func(t *testing.T) {
		out := l.T(t).Must(l.node, netlab.Helper("tcp-fetch", "["+serverViaPLAT+"]:5001", "20000000")...)
		if !strings.Contains(out, "ok 20000000 bytes") {
			t.Fatal(out)
		}
	})
	t.Run("udp", func(t *testing.T) {
		l.T(t).Must(l.node, netlab.Helper("udp-ping", "["+serverViaPLAT+"]:5002", "200", "5")...)
	})
	if len(backend) == 0 {
		t.Run("a session is one conntrack entry, the IPv4 one: the client's IPv6 is untracked", func(t *testing.T) {
			ev := l.Start(l.exit, "conntrack-events", "conntrack", "-E", "-e", "NEW", "-o", "extended")
			// new sessions (a socket each) until conntrack -E has listened
			// for two of them
			if !netlab.WaitFor(5*time.Second, func() bool {
				l.T(t).Must(l.node, netlab.Helper("udp-ping", "["+serverViaPLAT+"]:5002", "100", "1")...)
				return strings.Count(ev.Log(), "dport=5002") >= 2
			}) {
				t.Fatalf("no event of the sessions' IPv4 entries:\n%s", ev.Log())
			}
			ev.Stop()
			if strings.Contains(ev.Log(), "ipv6") {
				t.Errorf("IPv6 entries of sessions:\n%s", ev.Log())
			}
			if ct, _ := l.Run(l.exit, "conntrack", "-L", "-f", "ipv6", "-p", "udp", "--dport", "5002"); strings.Contains(ct, "dport=5002") {
				t.Errorf("an IPv6 entry of the session:\n%s", ct)
			}
			// each client address has its own IPv4 address from the pool
			if ct, _ := l.Run(l.exit, "conntrack", "-L", "-f", "ipv4", "-p", "udp", "--dport", "5002", "--orig-src", "198.18.0.2"); !strings.Contains(ct, "dport=5002") {
				t.Errorf("no IPv4 entry of the session from the client's pool address 198.18.0.2:\n%s", ct)
			}
		})
	}
	t.Run("ICMPv4 port unreachable comes back as ICMPv6", func(t *testing.T) {
		l.T(t).Must(l.node, netlab.Helper("udp-refused", "["+serverViaPLAT+"]:9")...)
	})
	t.Run("RFC 6146 3.5.1: one client endpoint, one IPv4 endpoint for every destination", func(t *testing.T) {
		platEndpointIndependentMapping(t, l)
	})
	t.Run("the fast path as asked", func(t *testing.T) { fastPathAsAsked(t, l.pstatus(t)) })
	t.Run("ICMPv4 time exceeded comes back as ICMPv6", func(t *testing.T) {
		// Hop limit 4: exit's kernel takes one, the translator one, the exit's
		// IPv4 forwarding one, r4 the last and answers Time Exceeded from 203.0.113.1.
		out, _ := l.Run(l.node, "ping", "-c", "1", "-W", "2", "-t", "4", serverViaPLAT)
		if !netlab.Contains(out, router4, "Time exceeded") {
			t.Fatalf("want Time exceeded from %s:\n%s", router4, out)
		}
	})
	t.Run("ICMPv4 fragmentation needed comes back as Packet Too Big", func(t *testing.T) {
		l.T(t).Must(l.r4, "ip", "link", "set", "r1", "mtu", "1400")
		l.T(t).Must(l.inet, "ip", "link", "set", "i0", "mtu", "1400")
		out, _ := l.Run(l.node, "ping", "-c", "2", "-i", "0.3", "-W", "1", "-M", "do", "-s", "1400", serverViaPLAT)
		if !netlab.Contains(out, "mtu=1420") && !netlab.Contains(out, "mtu = 1420") {
			t.Fatalf("want Packet too big mtu=1420 (1400 + 20):\n%s", out)
		}
	})
	t.Run("the whole chain: IPv4 client -> clatd -> platd -> IPv4 server", func(t *testing.T) {
		out := l.T(t).Must(l.client, "ping", "-c", "3", "-i", "0.2", "-W", "2", "198.51.100.1")
		if !strings.Contains(out, " 0% packet loss") {
			t.Fatal(out)
		}
		out = l.T(t).Must(l.client, netlab.Helper("tcp-fetch", "198.51.100.1:5001", "20000000")...)
		if !strings.Contains(out, "ok 20000000 bytes") {
			t.Fatal(out)
		}
		l.T(t).Must(l.client, netlab.Helper("udp-ping", "198.51.100.1:5002", "3000", "3")...)
	})
	t.Run("Packet Too Big from the exit towards the mesh comes back to the server as Fragmentation Needed", func(t *testing.T) {
		// RFC 7915 section 5.2: the exit's kernel answers a translated
		// packet too big for its mesh link with Packet Too Big to the
		// server's PLAT address, from its own address on the TUN (the
		// management address); translated, it must reach the server, or
		// the server keeps sending packets that never arrive.
		l.T(t).Must(l.exit, "ip", "link", "set", "x0", "mtu", "1300")
		defer l.Run(l.exit, "ip", "link", "set", "x0", "mtu", "1500")
		out, err := l.Run(l.node, append([]string{"timeout", "20"}, netlab.Helper("tcp-fetch", "["+serverViaPLAT+"]:5001", "20000000")...)...)
		if err != nil || !strings.Contains(out, "ok 20000000 bytes") {
			t.Fatalf("a download whose packets the mesh link takes only after PMTU discovery: %v %s\nplatd: %v", err, out, l.pstatus(t)["refused"])
		}
	})
	t.Run("source outside clat_range refused with ICMPv6", func(t *testing.T) {
		out, _ := l.Run(l.node, "ping", "-c", "1", "-W", "2", "-I", "fd00:1::1", serverViaPLAT)
		if !netlab.Contains(out, "Administratively prohibited") && !netlab.Contains(out, "Destination unreachable") {
			t.Errorf("want admin prohibited:\n%s", out)
		}
		if ref := l.pstatus(t)["refused"].(map[string]any); ref["refused_source"].(float64) < 1 {
			t.Errorf("not counted: %v", ref)
		}
	})
	t.Run("private destination refused with ICMPv6", func(t *testing.T) {
		out, _ := l.Run(l.node, "ping", "-c", "1", "-W", "2", "fddd:1337:1338:1234:5678:9abc:a00:1") // 10.0.0.1
		if !netlab.Contains(out, "Administratively prohibited") && !netlab.Contains(out, "Destination unreachable") {
			t.Errorf("want admin prohibited:\n%s", out)
		}
		if ref := l.pstatus(t)["refused"].(map[string]any); ref["destination"].(float64) < 1 {
			t.Errorf("not counted: %v", ref)
		}
	})
	t.Run("sessions listed per CLAT address and flushed", func(t *testing.T) {
		out, err := ctlsock.Query(l.psock, "sessions")
		if err != nil || !strings.Contains(out, `"clat":"`+nodeOwn6+`"`) {
			t.Fatalf("sessions: %v %s", err, out)
		}
		var list []map[string]any
		json.Unmarshal([]byte(out), &list)
		joined := 0
		for _, s := range list {
			if p, ok := s["wan_port"].(float64); ok {
				joined++
				if p < 61000 || p > 65535 {
					t.Errorf("session NATed to WAN port %v, outside platd's 61000-65535: %v", p, s)
				}
			}
		}
		if joined == 0 {
			t.Errorf("no session joined to its IPv4 entry (wan_port): %s", out)
		}
		st := l.pstatus(t)["sessions"].(map[string]any)
		if st["total"].(float64) < 1 || st["ports_in_use"].(float64) < 1 {
			t.Errorf("summary %v", st)
		}
		var mine []map[string]any
		out, _ = ctlsock.Query(l.psock, "sessions "+nodeOwn6)
		json.Unmarshal([]byte(out), &mine)
		if reply, _ := ctlsock.Query(l.psock, "flush "+nodeOwn6); !strings.Contains(reply, "flushed") {
			t.Fatalf("flush: %s", reply)
		}
		if out, _ := ctlsock.Query(l.psock, "sessions "+nodeOwn6); out != "[]" {
			t.Errorf("after flush: %s", out)
		}
		// the conntrack entry of each session goes (by its WAN port)
		out, _ = l.Run(l.exit, "conntrack", "-L", "-f", "ipv4")
		var ours []string // entries from the client pool
		for _, e := range strings.Split(out, "\n") {
			if strings.Contains(e, "src=198.18.") {
				ours = append(ours, e)
			}
		}
		out = strings.Join(ours, "\n")
		for _, s := range mine {
			if p, ok := s["wan_port"].(float64); ok && strings.Contains(out, fmt.Sprintf(" dport=%.0f ", p)) {
				t.Errorf("the conntrack entry of flushed session %v is left:\n%s", s, out)
			}
		}
		if len(mine) == 0 {
			t.Error("no session of " + nodeOwn6 + " to flush")
		}
		if reply, _ := ctlsock.Query(l.psock, "sessions nonsense"); !strings.HasPrefix(reply, "error:") {
			t.Errorf("bad argument reply %q", reply)
		}
	})
	t.Run("stop leaves no table, route or address", func(t *testing.T) {
		if err := l.platd.Stop(); err != nil {
			t.Fatalf("platd exit: %v\n%s", err, l.platd.Log())
		}
		if out := l.T(t).Must(l.exit, "nft", "list", "tables"); strings.Contains(out, "platd") {
			t.Errorf("table left: %s", out)
		}
		for _, cmd := range [][]string{{"iptables-legacy", "-S"}, {"iptables-legacy", "-t", "nat", "-S"}, {"ip6tables-legacy", "-S"}, {"ip6tables-legacy", "-t", "nat", "-S"}} {
			if out, _ := l.Run(l.exit, cmd...); strings.Contains(out, "PLATD") {
				t.Errorf("%v left: %s", cmd, out)
			}
		}
		if out := l.T(t).Must(l.exit, "ip", "-6", "route"); strings.Contains(out, "fddd:1337:1338") {
			t.Errorf("route left: %s", out)
		}
		if out := l.T(t).Must(l.exit, "ip", "route"); strings.Contains(out, "198.18.0.0") {
			t.Errorf("route left: %s", out)
		}
		if out := l.T(t).Must(l.exit, "ip", "addr"); strings.Contains(out, "fddd:1337:1338") || strings.Contains(out, "plat") {
			t.Errorf("address or device left: %s", out)
		}
	})
}

// platEndpointIndependentMapping: RFC 6146 section 3.5.1 asks of a NAT64
// the Endpoint-Independent Mapping of RFC 4787 (REQ-1): datagrams from one
// IPv6 transport address leave from one IPv4 transport address, whichever
// server they go to (what STUN-based peer-to-peer setups count on). platd's
// two NAT steps keep it because both are the kernel's source NAT without
// random port selection, which reuses a source's mapping while it has one;
// each client address has an IPv4 source of its own (the client pool), so
// another client's ports cannot take a client's mapping.
// One CLAT address and port to two servers at two addresses: both must see
// the same IPv4 source address and port; and so for a second client on the
// same port, under an endpoint of its own.
func platEndpointIndependentMapping(t *testing.T, l *platLab) {
	l.T(t).Must(l.inet, "ip", "addr", "add", "198.51.100.2/24", "dev", "i0")
	srv := l.T(t).StartServer(l.inet, "udp-echo-log", netlab.Helper("udp-echo-log", "0.0.0.0:5010", "2")...)
	defer srv.Stop()
	src := "[" + nodeOwn6 + "]:40123"
	l.T(t).Must(l.node, netlab.Helper("udp-send", src, "["+serverPLAT+"]:5010", "01")...)
	l.T(t).Must(l.node, netlab.Helper("udp-send", src, "[fddd:1337:1338:1234:5678:9abc:c633:6402]:5011", "02")...) // PLAT::198.51.100.2
	from := regexp.MustCompile(`(?m)^from (\S+) seq=`)
	var seen [][]string
	if !netlab.WaitFor(5*time.Second, func() bool { seen = from.FindAllStringSubmatch(srv.Log(), -1); return len(seen) == 2 }) {
		t.Fatalf("the servers did not both hear the client:\n%s", srv.Log())
	}
	if seen[0][1] != seen[1][1] || !strings.HasPrefix(seen[0][1], "203.0.113.2:") {
		t.Errorf("one client endpoint left from %s to one server and from %s to the other: want one WAN address and port for both", seen[0][1], seen[1][1])
	}
	// Two clients on the same port: each keeps its own mapping for every
	// server (with one IPv4 source for all behind a NAT66, the second
	// client's session to the other server took the first client's
	// mapping, and its next one, to the first client's server, another).
	other := "fddd:1337:1337:ffff::2"
	l.T(t).Must(l.node, "ip", "addr", "add", other+"/128", "dev", "lo")
	a, b := "["+nodeOwn6+"]:40124", "["+other+"]:40124"
	// (the order that showed it: the second client's first session to the
	// other server, then to the first client's)
	for _, m := range [][3]string{{a, serverPLAT + "]:5010", "a1"}, {b, "fddd:1337:1338:1234:5678:9abc:c633:6402]:5011", "b2"},
		{b, serverPLAT + "]:5010", "b1"}, {a, "fddd:1337:1338:1234:5678:9abc:c633:6402]:5011", "a2"}} {
		l.T(t).Must(l.node, netlab.Helper("udp-send", m[0], "["+m[1], hex.EncodeToString([]byte(m[2])))...)
	}
	seq := regexp.MustCompile(`(?m)^from (\S+) seq=([ab][12])`)
	ep := map[string]string{}
	if !netlab.WaitFor(5*time.Second, func() bool {
		for _, m := range seq.FindAllStringSubmatch(srv.Log(), -1) {
			ep[m[2]] = m[1]
		}
		return len(ep) == 4
	}) {
		t.Fatalf("the servers did not hear both clients twice (a server logs a sender when it changes: two clients from one endpoint look like one):\n%s", srv.Log())
	}
	if ep["a1"] != ep["a2"] || ep["b1"] != ep["b2"] || ep["a1"] == ep["b1"] {
		t.Errorf("two clients, one port, two servers: first client from %s and %s, second from %s and %s; want one endpoint per client, a different one each",
			ep["a1"], ep["a2"], ep["b1"], ep["b2"])
	}
}

// Restarting platd mid-transfer: the sessions live in conntrack, so the
// transfer continues byte-exact once platd is back.
func TestPLATRestartKeepsSessions(t *testing.T)         { platRestart(t) }
func TestPLATRestartKeepsSessionsIPTables(t *testing.T) { platRestart(t, iptablesLegacy...) }

func platRestart(t *testing.T, backend ...string) {
	l := newPlatLab(t, backend...)
	fetch, progress := startDownload(t, l.Lab, l.inet, l.client, "restart", "198.51.100.1:5001", 6000000, 1000000) // ~6 s
	receivedMore(t, fetch, progress, 500000)
	if err := l.platd.Stop(); err != nil {
		t.Fatalf("platd stop: %v", err)
	}
	l.startPlatd(t)
	if !finished(fetch, 6000000, 30*time.Second) {
		l.dumpState(t)
		t.Fatalf("transfer across a platd restart: %s", fetch.Log())
	}
	// A killed platd leaves its table; the next one replaces it, not duplicates it.
	l.platd.Signal(9)
	netlab.WaitFor(5*time.Second, l.platd.Exited)
	// A connection attempt that got a conntrack entry without SNAT (rules
	// gone, route still there) would be stuck on it: the next platd deletes it.
	stuck := []string{"-s", "198.18.0.9", "-d", "198.51.100.1", "-p", "tcp", "--sport", "40404", "--dport", "5001"}
	l.Must(l.exit, append(append([]string{"conntrack", "-I"}, stuck...), "--state", "SYN_SENT", "-t", "100")...)
	l.startPlatd(t)
	if out, _ := l.Run(l.exit, append([]string{"conntrack", "-L", "-f", "ipv4"}, stuck...)...); strings.Contains(out, "40404") {
		t.Errorf("entry without SNAT left after the restart: %s", out)
	}
	if legacy(backend) {
		if out := l.Must(l.exit, "iptables-legacy", "-S", "FORWARD"); strings.Count(out, "PLATD_FWD") != 1 {
			t.Fatalf("FORWARD after kill and restart: %s", out)
		}
	} else if out := l.Must(l.exit, "nft", "list", "tables"); strings.Count(out, "platd") != 1 {
		t.Fatalf("tables after kill and restart: %s", out)
	}
	out := l.Must(l.client, "ping", "-c", "2", "-i", "0.2", "-W", "2", "198.51.100.1")
	if !strings.Contains(out, " 0% packet loss") {
		t.Fatal(out)
	}
}

func TestPLATBadFlagsExit2(t *testing.T) {
	for _, args := range [][]string{
		{"-bogus"},
		{"-plat-prefix", platPrefix},
		{"-plat-prefix", "nonsense", "-clat-range", clatRange, "-wan-dev", "eth0"},
		{"-plat-prefix", platPrefix, "-clat-range", clatRange, "-wan-dev", "eth0", "-port-range", "70000-1"},
		{"-plat-prefix", platPrefix, "-clat-range", clatRange, "-wan-dev", "eth0", "-allow", "10.0.0.0/33"},
		{"-plat-prefix", platPrefix, "-clat-range", "fddd:1337:1338::/40", "-wan-dev", "eth0"},
		{"-plat-prefix", platPrefix, "-clat-range", clatRange, "-wan-dev", "eth0", "-client-pool", "198.18.0.0/15"},
		{"-plat-prefix", platPrefix, "-clat-range", clatRange, "-wan-dev", "eth0", "-client-pool", "fd00::/64"},
		{"-plat-prefix", platPrefix, "-clat-range", clatRange, "-wan-dev", "eth0", "-allow", "198.18.0.0/24"},
		{"-plat-prefix", platPrefix, "-clat-range", clatRange, "-wan-dev", "eth0", "-port-guard-filter", "on"},
	} {
		out, code := runExit(bin("platd"), args...)
		if code != 2 || strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.HasPrefix(out, "platd: ") {
			t.Errorf("%v: exit %d, output %q; want exit 2 and one line", args, code, out)
		}
	}
}

// Port range exhausted towards one destination: new flows are refused with
// ICMP, the existing ones keep working, platd keeps running and says so.
func TestPLATPortRangeExhausted(t *testing.T) { platPortRange(t) }
func TestPLATPortRangeExhaustedIPTables(t *testing.T) {
	platPortRange(t, iptablesLegacy...)
}

func platPortRange(t *testing.T, backend ...string) {
	l := newPlatLab(t, append([]string{"-port-range", "61000-61002"}, backend...)...)
	l.StartServer(l.inet, "udp-echo", netlab.Helper("udp-echo", "0.0.0.0:5002")...)
	out := l.Must(l.node, netlab.Helper("udp-flows", "["+serverPLAT+"]:5002", "5")...)
	if !strings.Contains(out, "ok=3 refused=2 again_ok=3") {
		t.Fatalf("3 ports: want 3 flows served, 2 refused, the 3 still working; got %s", out)
	}
	if ref := l.pstatus(t)["refused"].(map[string]any); ref["refused_ports"].(float64) < 2 {
		t.Errorf("refusals not counted: %v", ref)
	}
	if l.platd.Exited() {
		t.Fatal("platd died")
	}
}

// Conntrack nearly full: new sessions refused with ICMP, existing kept.
func TestPLATConntrackFull(t *testing.T) {
	l := newPlatLab(t, "-conntrack-limit", "12")
	l.StartServer(l.inet, "udp-echo", netlab.Helper("udp-echo", "0.0.0.0:5002")...)
	// A session that exists before the table fills must keep working.
	ping := l.Start(l.node, "ping", "ping", "-c", "25", "-i", "0.2", "-W", "2", serverPLAT)
	// Each flow is one entry (the IPv4 one); 14 flows pass the limit of 12.
	out := l.Must(l.node, netlab.Helper("udp-flows", "["+serverPLAT+"]:5002", "14")...)
	if !strings.Contains(out, "ok=14") {
		t.Fatalf("before the limit: %s", out)
	}
	if !netlab.WaitFor(5*time.Second, func() bool { return l.pstatus(t)["refusing_new_sessions"] == true }) {
		t.Fatalf("platd does not say it refuses: %v", l.pstatus(t))
	}
	out = l.Must(l.node, netlab.Helper("udp-flows", "["+serverPLAT+"]:5002", "2")...)
	if !strings.Contains(out, "ok=0 refused=2") {
		t.Fatalf("while full: %s", out)
	}
	if !strings.Contains(l.platd.Log(), "conntrack table nearly full") {
		t.Error("no log line")
	}
	netlab.WaitFor(10*time.Second, ping.Exited)
	if !strings.Contains(ping.Log(), " 0% packet loss") {
		t.Errorf("the existing session suffered:\n%s", ping.Log())
	}
}

// An exit node serves its own clients too: clatd and platd side by side,
// the CLAT's IPv6 going straight into the local PLAT (DESIGN.md section 1).
func TestCLATAndPLATOnOneNode(t *testing.T) {
	l := netlab.New(t)
	client, exit, inet := l.NS("c"), l.NS("x"), l.NS("i")
	l.Link(client, "c0", exit, "br0")
	l.Link(exit, "wan0", inet, "i0")
	l.Forwarding(exit)
	l.Must(client, "ip", "addr", "add", "10.130.0.10/16", "dev", "c0")
	l.Must(client, "ip", "route", "add", "default", "via", "10.130.0.1")
	l.Must(exit, "ip", "addr", "add", "10.130.0.1/16", "dev", "br0")
	l.Must(exit, "ip", "addr", "add", "198.51.100.254/24", "dev", "wan0")
	l.Must(inet, "ip", "addr", "add", "198.51.100.1/24", "dev", "i0")
	psock, csock := filepath.Join(l.Dir, "platd.sock"), filepath.Join(l.Dir, "clatd.sock")
	waitUp(t, psock, l.Start(exit, "platd", bin("platd"), "-plat-prefix", platPrefix, "-clat-range", clatRange, "-wan-dev", "wan0",
		"-allow", "198.51.100.0/24", "-socket", psock))
	waitUp(t, csock, l.Start(exit, "clatd", bin("clatd"), "-clat-prefix", clatPrefix, "-plat-prefix", platPrefix,
		"-client-net", "10.130.0.0/16", "-client-dev", "br0", "-socket", csock))
	l.StartServer(inet, "tcp-serve", netlab.Helper("tcp-serve", "0.0.0.0:5001", "10000000")...)
	out := l.Must(client, "ping", "-c", "3", "-i", "0.2", "-W", "2", "198.51.100.1")
	if !strings.Contains(out, " 0% packet loss") {
		t.Fatal(out)
	}
	out = l.Must(client, netlab.Helper("tcp-fetch", "198.51.100.1:5001", "10000000")...)
	if !strings.Contains(out, "ok 10000000 bytes") {
		t.Fatal(out)
	}
	st := statusOf(t, psock)["sessions"].(map[string]any)
	if st["per_clat"].(map[string]any)[clientCLAT] == nil {
		t.Errorf("the local CLAT's sessions are not in platd: %v", st)
	}
}

// The uplink's address changes (a DHCP or PPPoE renewal): platd NATs new
// sessions to the new address without a restart.
func TestPLATFollowsWANAddress(t *testing.T)         { platFollowsWAN(t) }
func TestPLATFollowsWANAddressIPTables(t *testing.T) { platFollowsWAN(t, iptablesLegacy...) }

func platFollowsWAN(t *testing.T, backend ...string) {
	l := newPlatLab(t, backend...)
	l.Start(l.inet, "tcp-serve", netlab.Helper("tcp-serve", "0.0.0.0:5001", "100000")...)
	// as udhcpc does: the old address goes, then the new one comes (the
	// default route with it)
	l.Must(l.exit, "ip", "addr", "del", "203.0.113.2/24", "dev", "wan0")
	l.Must(l.exit, "ip", "addr", "add", "203.0.113.3/24", "dev", "wan0")
	l.Must(l.exit, "ip", "route", "replace", "default", "via", "203.0.113.1")
	if !netlab.WaitFor(5*time.Second, func() bool { return l.pstatus(t)["wan_address"] == "203.0.113.3" }) {
		t.Fatalf("platd still NATs to %v:\n%s", l.pstatus(t)["wan_address"], l.platd.Log())
	}
	if out := l.Must(l.client, netlab.Helper("tcp-fetch", "198.51.100.1:5001", "100000")...); !strings.Contains(out, "ok 100000 bytes") {
		t.Fatal(out)
	}
	if out := l.Must(l.exit, "conntrack", "-L", "-p", "tcp", "--orig-src", "198.18.0.2"); !strings.Contains(out, "dst=203.0.113.3") {
		t.Errorf("the new session is not NATed to the new address:\n%s", out)
	}
}

// A burst of address events overflows platd's netlink socket (ENOBUFS),
// which ends its subscription; platd must subscribe again and still
// follow the uplink's address (issue 15). 5000 addresses come and go on a
// bridge device in the exit's namespace, then the WAN address changes.
func TestPLATFollowsWANAddressAfterAnEventFlood(t *testing.T) {
	l := newPlatLab(t)
	l.Must(l.exit, "ip", "link", "add", "flood0", "type", "bridge")
	l.Must(l.exit, "ip", "link", "set", "flood0", "up")
	var add, del strings.Builder
	for i := 0; i < 5000; i++ {
		fmt.Fprintf(&add, "addr add 10.%d.%d.1/32 dev flood0\n", i/200, i%200)
		fmt.Fprintf(&del, "addr del 10.%d.%d.1/32 dev flood0\n", i/200, i%200)
	}
	floodWhileStopped(l.Lab, l.exit, l.platd, add.String(), del.String())
	l.Must(l.exit, "ip", "addr", "del", "203.0.113.2/24", "dev", "wan0")
	l.Must(l.exit, "ip", "addr", "add", "203.0.113.3/24", "dev", "wan0")
	if !netlab.WaitFor(10*time.Second, func() bool { return l.pstatus(t)["wan_address"] == "203.0.113.3" }) {
		t.Fatalf("platd no longer follows the WAN after the flood: still %v, %v restarts\n%s",
			l.pstatus(t)["wan_address"], l.pstatus(t)["wan_watch_restarts"], l.platd.Log())
	}
	if n, _ := l.pstatus(t)["wan_watch_restarts"].(float64); n < 1 {
		t.Errorf("the flood did not end the subscription (%v restarts): the test tests nothing", n)
	}
}

// With a range of 1024 ports or more the kernel's conntrack events count
// each destination's sessions (portguard.go): in a BPF filter on the event
// socket, or (-port-guard-filter off, a kernel without BPF) in platd from
// every event; platd refuses a destination from 7/8 of the range on (896
// sessions): every flow past that is served (events arrive a little late)
// or refused with ICMP, none is lost to a NAT that found no free port (the
// kernel counts those as insert_failed), and the ones served keep working.
func TestPLATPortRangeExhaustedCountedFromEvents(t *testing.T) {
	for _, c := range []struct{ filter, guard string }{{"auto", "bpf"}, {"off", "events"}} {
		t.Run(c.guard, func(t *testing.T) {
			l := newPlatLab(t, "-port-range", "61000-62023", "-port-guard-filter", c.filter)
			// Every refusal is an ICMP error to the client's pool address, which the kernel allows
			// one a second after a burst of 6 (icmp_ratelimit, per peer): without
			// this, most of the refusals here would look lost. (And at most 24, in
			// the global limit's burst of 50.)
			l.Must(l.exit, "sysctl", "-qw", "net.ipv4.icmp_ratelimit=0")
			l.StartServer(l.inet, "udp-echo", netlab.Helper("udp-echo", "0.0.0.0:5002")...)
			out := l.Must(l.node, netlab.Helper("udp-flows", "["+serverPLAT+"]:5002", "920")...)
			var ok, refused, again int
			if _, err := fmt.Sscanf(strings.TrimSpace(out), "ok=%d refused=%d again_ok=%d", &ok, &refused, &again); err != nil {
				t.Fatalf("udp-flows: %q", out)
			}
			if ok < 896 || ok+refused != 920 || again != ok {
				t.Fatalf("1024 ports, limit 896: %d flows served, %d refused, %d of the served still working; want at least 896 served, the rest refused, none lost", ok, refused, again)
			}
			st := l.pstatus(t)
			if st["port_guard"] != c.guard || st["destinations_out_of_ports"] != float64(1) || st["port_guard_uncounted"] != nil {
				t.Errorf("status: port_guard %v, destinations_out_of_ports %v, port_guard_uncounted %v; want %s, 1, none",
					st["port_guard"], st["destinations_out_of_ports"], st["port_guard_uncounted"], c.guard)
			}
			if ref := st["refused"].(map[string]any); ref["refused_ports"].(float64) < float64(refused) {
				t.Errorf("refusals not counted: %v, %d refused", ref, refused)
			}
			if ct := l.Must(l.exit, "conntrack", "-S"); regexp.MustCompile(`insert_failed=[1-9]`).MatchString(ct) {
				t.Errorf("the NAT found no free port for some sessions:\n%s", ct)
			}
			if !strings.Contains(l.platd.Log(), "WAN ports to a destination used up") {
				t.Error("no log line")
			}
		})
	}
}

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gluon-464xlat/gluon-464xlat/internal/ctlsock"
	"github.com/gluon-464xlat/gluon-464xlat/internal/netlab"
)

const (
	clatPrefix = "fddd:1337:1337:1234:5678:9abc::/96"
	platPrefix = "fddd:1337:1338:1234:5678:9abc::/96"
	server4    = "198.51.100.1"
	serverPLAT = "fddd:1337:1338:1234:5678:9abc:c633:6401" // PLAT::198.51.100.1
	clientCLAT = "fddd:1337:1337:1234:5678:9abc:a82:a"     // CLAT::10.130.0.10
)

// clatLab is client -- node (clatd) -- IPv6 router -- IPv6 server, where the
// server owns PLAT::198.51.100.1 (so the client reaches it as 198.51.100.1).
type clatLab struct {
	*netlab.Lab
	client, node, router, server string
	clatd                        *netlab.Proc
	sock                         string
	args                         []string // clatd's command line
}

func newCLATLab(t *testing.T, extra ...string) *clatLab {
	l := &clatLab{Lab: netlab.New(t)}
	l.client, l.node, l.router, l.server = l.NS("c"), l.NS("n"), l.NS("r"), l.NS("s")
	l.Link(l.client, "c0", l.node, "n0")
	l.Link(l.node, "n1", l.router, "r0")
	l.Link(l.router, "r1", l.server, "s0")
	l.Forwarding(l.node)
	l.Forwarding(l.router)
	l.Must(l.client, "ip", "addr", "add", "10.130.0.10/16", "dev", "c0")
	l.Must(l.client, "ip", "route", "add", "default", "via", "10.130.0.1")
	l.Must(l.node, "ip", "addr", "add", "10.130.0.1/16", "dev", "n0")
	l.Must(l.node, "ip", "addr", "add", "fd00:1::1/64", "dev", "n1", "nodad")
	l.Must(l.node, "ip", "route", "add", platPrefix, "via", "fd00:1::2")
	l.Must(l.router, "ip", "addr", "add", "fd00:1::2/64", "dev", "r0", "nodad")
	l.Must(l.router, "ip", "addr", "add", "fd00:2::1/64", "dev", "r1", "nodad")
	l.Must(l.router, "ip", "route", "add", clatPrefix, "via", "fd00:1::1")
	l.Must(l.router, "ip", "route", "add", platPrefix, "via", "fd00:2::2")
	l.Must(l.server, "ip", "addr", "add", "fd00:2::2/64", "dev", "s0", "nodad")
	l.Must(l.server, "ip", "addr", "add", serverPLAT+"/128", "dev", "lo")
	// The server answers the CLAT from its PLAT-mapped address, as a PLAT would.
	l.Must(l.server, "ip", "route", "add", clatPrefix, "via", "fd00:2::1", "src", serverPLAT)
	l.sock = filepath.Join(l.Dir, "clatd.sock")
	args := append([]string{bin("clatd"), "-clat-prefix", clatPrefix, "-plat-prefix", platPrefix,
		"-client-net", "10.130.0.0/16", "-client-dev", "n0", "-socket", l.sock, "-log-level", "debug"}, extra...)
	l.args = args
	l.clatd = l.Start(l.node, "clatd", args...)
	waitUp(t, l.sock, l.clatd)
	return l
}

// earlyFilters counts the fast path's filters at the clients' device.
func (l *clatLab) earlyFilters(t *testing.T) int {
	return strings.Count(l.T(t).Must(l.node, "tc", "filter", "show", "dev", "n0", "ingress"), "clat_early")
}

func (l *clatLab) status(t *testing.T) map[string]any { return statusOf(t, l.sock) }

// waitUp waits until the daemon p answers "status" on sock, or fails t
// with its log.
func waitUp(t *testing.T, sock string, p *netlab.Proc) {
	t.Helper()
	if !netlab.WaitFor(5*time.Second, func() bool { _, err := ctlsock.Query(sock, "status"); return err == nil }) {
		t.Fatalf("%s did not come up:\n%s", p.Name, p.Log())
	}
}

// statusOf asks a daemon's socket for its status and decodes the JSON.
func statusOf(t *testing.T, sock string) map[string]any {
	t.Helper()
	out, err := ctlsock.Query(sock, "status")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("status is not JSON: %v: %s", err, out)
	}
	return m
}

func TestCLATEndToEnd(t *testing.T) {
	l := newCLATLab(t)
	// The server side: TCP source of a byte pattern, UDP echo.
	l.StartServer(l.server, "tcp-serve", netlab.Helper("tcp-serve", "[::]:5001", "20000000")...)
	l.StartServer(l.server, "udp-echo", netlab.Helper("udp-echo", "[::]:5002")...)
	l.StartServer(l.client, "tcp-serve-client", netlab.Helper("tcp-serve", "0.0.0.0:5003", "20000000")...)

	t.Run("ping", func(t *testing.T) {
		out := l.T(t).Must(l.client, "ping", "-c", "3", "-i", "0.2", "-W", "2", server4)
		if !strings.Contains(out, " 0% packet loss") {
			t.Fatalf("ping through clatd:\n%s", out)
		}
	})
	t.Run("tcp download byte-exact", func(t *testing.T) {
		out := l.T(t).Must(l.client, netlab.Helper("tcp-fetch", server4+":5001", "20000000")...)
		if !strings.Contains(out, "ok 20000000 bytes") {
			t.Fatal(out)
		}
	})
	t.Run("tcp upload byte-exact (IPv6 host connects to the client's CLAT address)", func(t *testing.T) {
		out := l.T(t).Must(l.server, netlab.Helper("tcp-fetch", "["+clientCLAT+"]:5003", "20000000")...)
		if !strings.Contains(out, "ok 20000000 bytes") {
			t.Fatal(out)
		}
	})
	t.Run("udp", func(t *testing.T) {
		l.T(t).Must(l.client, netlab.Helper("udp-ping", server4+":5002", "100", "5")...)
	})
	t.Run("udp fragmented both ways", func(t *testing.T) {
		// 3000-byte datagrams: IPv4 fragments become IPv6 fragments and back.
		out := l.T(t).Must(l.client, netlab.Helper("udp-ping", server4+":5002", "3000", "5")...)
		if !strings.Contains(out, "ok 5 datagrams of 3000 bytes") {
			t.Fatal(out)
		}
		st := l.status(t)["counters"].(map[string]any)
		if st["fragments_made"].(float64) == 0 {
			t.Errorf("no IPv6 fragments made: %v", st)
		}
	})
	t.Run("ttl expiry returns translated time exceeded", func(t *testing.T) {
		// TTL 2: the node's kernel takes one, the translator (a router hop,
		// RFC 7915 section 4.1) the other and answers from 192.0.0.2.
		out, _ := l.Run(l.client, "ping", "-c", "1", "-W", "2", "-t", "2", server4)
		if !netlab.Contains(out, "From 192.0.0.2", "exceeded") {
			t.Errorf("TTL 2:\n%s", out)
		}
		// TTL 3: the IPv6 router's ICMPv6 Time Exceeded comes back as ICMPv4,
		// from the RFC 6791 address since fd00:1::2 has no IPv4 mapping.
		out, _ = l.Run(l.client, "ping", "-c", "1", "-W", "2", "-t", "3", server4)
		if !netlab.Contains(out, "From 192.0.0.8", "exceeded") {
			t.Errorf("TTL 3:\n%s", out)
		}
	})
	t.Run("pmtu discovery through a smaller IPv6 MTU", func(t *testing.T) {
		l.T(t).Must(l.router, "ip", "link", "set", "r1", "mtu", "1400")
		l.T(t).Must(l.server, "ip", "link", "set", "s0", "mtu", "1400")
		// A 1428-byte DF packet becomes 1448 bytes of IPv6: the router sends
		// Packet Too Big 1400, the client must learn 1380.
		out, _ := l.Run(l.client, "ping", "-c", "2", "-i", "0.3", "-W", "1", "-M", "do", "-s", "1400", server4)
		if !netlab.Contains(out, "1380") {
			t.Errorf("no Fragmentation Needed with MTU 1380:\n%s", out)
		}
		if rt := l.T(t).Must(l.client, "ip", "route", "get", server4); !strings.Contains(rt, "mtu 1380") {
			t.Errorf("client did not learn the path MTU: %s", rt)
		}
		// Upload through the narrow link: the client's TCP must shrink its segments.
		out = l.T(t).Must(l.server, netlab.Helper("tcp-fetch", "["+clientCLAT+"]:5003", "20000000")...)
		if !strings.Contains(out, "ok 20000000 bytes") {
			t.Fatal(out)
		}
	})
	t.Run("the fast path as asked", func(t *testing.T) {
		st := l.status(t)
		fastPathAsAsked(t, st)
		// UDP and echo went straight to the mesh device and back to the
		// client's (the PLAT is behind a router: a gateway route)
		if fp, _ := st["fastpath_counters"].(map[string]any); fastPath != "off" && (fp["direct_4to6"].(float64) < 8 || fp["direct_6to4"].(float64) < 8) {
			t.Errorf("UDP and echo not sent direct: %v", fp)
		}
		want := "n0" // the clients' device: the program at its ingress too
		if fastPath == "off" {
			want = ""
		}
		if got, _ := st["fastpath_early"].(string); got != want {
			t.Errorf("fastpath_early %q, want %q", got, want)
		}
	})
	t.Run("untranslatable traffic is counted, not fatal", func(t *testing.T) {
		// CLAT::127.0.0.1 is routed to the TUN but maps to nothing.
		l.Run(l.server, "ping", "-c", "2", "-i", "0.2", "-W", "1", "fddd:1337:1337:1234:5678:9abc:7f00:1")
		drops := l.status(t)["counters"].(map[string]any)["drops"].(map[string]any)
		if drops["untranslatable_dst"] == nil {
			t.Errorf("drop not counted: %v", drops)
		}
		if reply, _ := ctlsock.Query(l.sock, "frobnicate"); !strings.HasPrefix(reply, "error:") {
			t.Errorf("bad command reply %q", reply)
		}
		if reply, _ := ctlsock.Query(l.sock, "set_platprefix nonsense"); !strings.HasPrefix(reply, "error:") {
			t.Errorf("bad prefix reply %q", reply)
		}
		if l.clatd.Exited() {
			t.Fatal("clatd died")
		}
	})
	t.Run("killed and restarted: one filter at the clients' device", func(t *testing.T) {
		if fastPath == "off" {
			t.Skip("no fast path")
		}
		if n := l.earlyFilters(t); n != 1 {
			t.Fatalf("%d filters at n0's ingress, want 1", n)
		}
		l.clatd.Signal(syscall.SIGKILL)
		netlab.WaitFor(5*time.Second, l.clatd.Exited)
		// (its TUN went with it, so the filter left sends nothing on)
		l.clatd = l.Start(l.node, "clatd-again", l.args...)
		waitUp(t, l.sock, l.clatd)
		if n := l.earlyFilters(t); n != 1 {
			t.Errorf("%d filters at n0's ingress after the restart, want 1", n)
		}
		before := l.status(t)["fastpath_counters"].(map[string]any)["direct_4to6"].(float64)
		l.T(t).Must(l.client, netlab.Helper("udp-ping", server4+":5002", "100", "5")...)
		if after := l.status(t)["fastpath_counters"].(map[string]any)["direct_4to6"].(float64); after < before+5 {
			t.Errorf("the restarted clatd's fast path sent %v datagrams direct, want 5", after-before)
		}
	})
	t.Run("stop removes routes, rules and device", func(t *testing.T) {
		if err := l.clatd.Stop(); err != nil {
			t.Fatalf("clatd exit: %v\n%s", err, l.clatd.Log())
		}
		if out := l.T(t).Must(l.node, "ip", "rule"); strings.Contains(out, "lookup 464") {
			t.Errorf("rule left behind:\n%s", out)
		}
		if out := l.T(t).Must(l.node, "ip", "-6", "route"); strings.Contains(out, "fddd:1337:1337") {
			t.Errorf("route left behind:\n%s", out)
		}
		if out, _ := l.Run(l.node, "ip", "link", "show", "clat"); !strings.Contains(out, "does not exist") {
			t.Errorf("device left behind:\n%s", out)
		}
		if n := l.earlyFilters(t); n != 0 {
			t.Errorf("%d fast path filters left at the clients' device", n)
		}
	})
}

// The PLAT prefix changes at run time without restarting, and traffic moves.
func TestCLATSetPlatPrefixAtRunTime(t *testing.T) {
	l := newCLATLab(t, "-plat-prefix", "fddd:1337:1338:aaaa:bbbb:cccc::/96")
	// The first PLAT goes nowhere; switch to the real one.
	if out, _ := l.Run(l.client, "ping", "-c", "1", "-W", "1", server4); strings.Contains(out, " 0% packet loss") {
		t.Fatalf("reached the server through a PLAT that does not exist:\n%s", out)
	}
	if reply, err := ctlsock.Query(l.sock, "set_platprefix "+platPrefix); err != nil || reply != "ok" {
		t.Fatalf("set_platprefix: %q %v", reply, err)
	}
	if reply, _ := ctlsock.Query(l.sock, "get_platprefix"); reply != platPrefix {
		t.Fatalf("get_platprefix %q", reply)
	}
	out := l.Must(l.client, "ping", "-c", "3", "-i", "0.2", "-W", "2", server4)
	if !strings.Contains(out, " 0% packet loss") {
		t.Fatalf("after switch:\n%s", out)
	}
	l.clatd.Signal(syscall.SIGTERM)
}

func TestCLATBadFlagsExit2(t *testing.T) {
	for _, args := range [][]string{
		{"-bogus"},
		{"-client-net", "10.0.0.0/8"},
		{"-clat-prefix", "fddd::/64", "-client-net", "10.0.0.0/8"},
		{"-clat-prefix", "fddd::/96", "-client-net", "nonsense"},
		{"-clat-prefix", "fddd::/96", "-client-net", "10.0.0.0/8", "-plat-prefix", "fddd::/97"},
		{"-clat-prefix", "fddd::/96", "-client-net", "10.0.0.0/8", "-mtu", "100"},
		{"-clat-prefix", "fddd::/96", "-client-net", "10.0.0.0/8", "-fastpath", "maybe"},
	} {
		out, code := runExit(bin("clatd"), args...)
		if code != 2 || strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.HasPrefix(out, "clatd: ") {
			t.Errorf("%v: exit %d, output %q; want exit 2 and one line", args, code, out)
		}
	}
}

// A deleted TUN device makes every read fail: clatd must neither spin on
// the errors (a CPU per queue) nor keep running without its device; it
// exits non-zero at once, for procd to start it (and the device) again.
func TestCLATExitsWhenItsDeviceIsDeleted(t *testing.T) {
	l := newCLATLab(t)
	l.Must(l.node, "ip", "link", "del", "clat")
	if !netlab.WaitFor(5*time.Second, l.clatd.Exited) {
		cpu, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", l.clatd.Pid()))
		t.Fatalf("clatd still runs 5 s after its device was deleted (stat: %s)", cpu)
	}
	if code := l.clatd.ExitCode(); code != 1 || !strings.Contains(l.clatd.Log(), "TUN device is gone") {
		t.Fatalf("exit code %d, log:\n%s", code, l.clatd.Log())
	}
}

package l3roamd

import (
	"net/netip"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/gluon-464xlat/gluon-464xlat/internal/netlab"
)

// nftLab is an nftState on a network namespace of its own, whose client
// port br-client is linked to a client namespace that can send from the
// mesh's CLAT range (which the table's first rule counts and drops).
func nftLab(t *testing.T) (n *nftState, spoof func(), drops func() string) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (a network namespace with nftables)")
	}
	l := netlab.New(t)
	ns, cl := l.NS("nft"), l.NS("client")
	l.Link(ns, "br-client", cl, "c0")
	l.Must(ns, "ip", "addr", "add", "fd00::1/64", "dev", "br-client", "nodad")
	l.Must(cl, "ip", "addr", "add", "fd00::2/64", "dev", "c0", "nodad")
	l.Must(cl, "ip", "addr", "add", "fddd:1337:1337::99/128", "dev", "c0", "nodad")
	f, err := os.Open("/var/run/netns/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	n = &nftState{table: "l3roamd", clientDev: "br-client", clatDev: "clat", netns: int(f.Fd()),
		ranges: []netip.Prefix{netip.MustParsePrefix("fddd:1337:1337::/48"), netip.MustParsePrefix("fddd:1337:1338::/48")}}
	spoof = func() { l.Run(cl, "ping", "-6", "-c", "1", "-W", "0.2", "-I", "fddd:1337:1337::99", "fd00::1") }
	drops = func() string {
		out := l.Must(ns, "nft", "list", "chain", "inet", "l3roamd", "raw")
		if m := regexp.MustCompile(`counter packets (\d+)`).FindStringSubmatch(out); m != nil {
			return m[1]
		}
		return "none:\n" + out
	}
	return n, spoof, drops
}

// An event that changes clients changes set elements, not the table: the
// rules (and with them the client port's drop counters, which operators
// watch) stay. Before, every event rebuilt the table. A change of the
// table's layout (the PLAT now) rebuilds it, and a restarted daemon reads
// back what either wrote.
func TestNftChangesOnlyElements(t *testing.T) {
	n, spoof, drops := nftLab(t)
	clat1, clat2 := netip.MustParsePrefix("fddd:1337:1337::1:0:0/96"), netip.MustParsePrefix("fddd:1337:1337::2:0:0/96")
	p1, p2, p3 := netip.MustParsePrefix("fddd:1337:1338::1:0:0/96"), netip.MustParsePrefix("fddd:1337:1338::2:0:0/96"), netip.MustParsePrefix("fddd:1337:1338::3:0:0/96")
	now := time.Now()
	exp := now.Add(time.Hour).Truncate(time.Second)
	a, b := netip.MustParseAddr("10.130.0.10"), netip.MustParseAddr("10.130.0.11")
	d := &desired{own: clat1, plat: p1, xlat: map[netip.Addr]xlatState{a: {clatd: clat2, platc: p2, expires: exp}}, roams: map[netip.Addr]roamed{}}
	if err := n.apply(d, now); err != nil {
		t.Fatal(err)
	}
	spoof()
	if c := drops(); c != "1" {
		t.Fatalf("the client port's spoofed packet: counter %s, want 1", c)
	}
	check := func(step string, want map[netip.Addr]xlatState) {
		t.Helper()
		got, _, err := n.read(clat1, now)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: the table holds %v, want %v", step, got, want)
		}
		for ip, w := range want {
			if g := got[ip]; g.clatd != w.clatd || g.platc != w.platc || g.expires.Sub(w.expires).Abs() > 2*time.Second {
				t.Errorf("%s: %s: %+v, want %+v", step, ip, g, w)
			}
		}
	}
	check("first", d.xlat)

	d.xlat[b] = xlatState{clatd: clat2, platc: p2, expires: exp}
	if err := n.apply(d, now); err != nil {
		t.Fatal(err)
	}
	check("a second client", d.xlat)
	if c := drops(); c != "1" {
		t.Errorf("a client more rebuilt the rules: the drop counter is %s, was 1", c)
	}
	delete(d.xlat, a)
	d.xlat[b] = xlatState{clatd: clat2, platc: p2, expires: exp.Add(time.Hour)} // a renewed lease
	if err := n.apply(d, now); err != nil {
		t.Fatal(err)
	}
	check("one client gone, one renewed", d.xlat)
	if c := drops(); c != "1" {
		t.Errorf("a client less rebuilt the rules: the drop counter is %s, was 1", c)
	}

	d.plat = p3 // the layout changes: the table is written anew
	if err := n.apply(d, now); err != nil {
		t.Fatal(err)
	}
	check("another PLAT", d.xlat)
	if c := drops(); c != "0" {
		t.Errorf("the table for the new PLAT was not written anew: the drop counter is %s", c)
	}

	// what the kernel holds is what a new daemon starts from
	again := &nftState{table: n.table, clientDev: n.clientDev, clatDev: n.clatDev, ranges: n.ranges, netns: n.netns}
	got, _, err := again.read(clat1, now)
	if err != nil || len(got) != 1 || got[b].platc != p2 {
		t.Fatalf("a restarted daemon reads %v, %v", got, err)
	}
}

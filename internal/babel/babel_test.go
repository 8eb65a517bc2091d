package babel

import (
	"bufio"
	"net/netip"
	"os"
	"strings"
	"testing"
)

// The fixtures are real babeld 1.12.1 output recorded in network namespaces
// on this machine ("dump" and "monitor", with a link cost change).
func replay(t *testing.T, file string) (*Table, int, int) {
	f, err := os.Open("testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tab := NewTable()
	routes, others := 0, 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		ev, err := ParseLine(sc.Text())
		if err == ErrNotEvent {
			continue
		}
		if err != nil {
			t.Fatalf("real babeld line rejected: %v", err)
		}
		if ev.Route != nil {
			routes++
		} else {
			others++
		}
		tab.Apply(ev)
	}
	return tab, routes, others
}

var platRange = netip.MustParsePrefix("fddd:1337:1338::/48")

func inPLAT(p netip.Prefix) bool { return p.Bits() == 96 && platRange.Contains(p.Addr()) }

func TestParseRealDump(t *testing.T) {
	tab, routes, others := replay(t, "babeld-1.12.1-dump.txt")
	if routes == 0 || others == 0 {
		t.Fatalf("routes %d others %d", routes, others)
	}
	best := tab.Best(inPLAT)
	r, ok := best[netip.MustParsePrefix("fddd:1337:1338:cccc:cccc:cccc::/96")]
	if !ok || !r.Installed || r.Metric != 96 || r.If != "bc" || r.Via != netip.MustParseAddr("fe80::7ccc:c1ff:fe2e:95da") {
		t.Fatalf("best route %+v", r)
	}
}

func TestParseRealMonitorStream(t *testing.T) {
	tab, routes, _ := replay(t, "babeld-1.12.1-monitor.txt")
	if routes < 5 {
		t.Fatalf("only %d route events", routes)
	}
	best := tab.Best(inPLAT)
	if len(best) != 2 {
		t.Fatalf("want both /96s, got %v", best)
	}
	// Two routes for each prefix (direct and via the other neighbour): the installed one wins.
	for p, r := range best {
		if !r.Installed || r.Metric != 96 {
			t.Errorf("%s: %+v", p, r)
		}
	}
}

func TestParseMalformedLines(t *testing.T) {
	for _, line := range []string{
		"add route 1 prefix fddd::/96 from ::/0 installed yes id x metric",             // key without value
		"add route 1 prefix fddd::/96 from ::/0 installed maybe id x metric 96",        // bad installed
		"add route 1 prefix fddd::/96 from ::/0 installed yes id x metric 70000",       // metric out of range
		"add route 1 prefix fddd::/96 from ::/0 installed yes id x metric -5",          // negative
		"add route 1 prefix not-a-prefix from ::/0 installed yes id x metric 96",       // bad prefix
		"add route 1 from ::/0 installed yes id x metric 96",                           // no prefix
		"change route 1 prefix fddd::/96 installed yes via fe80::zz metric 96 if eth0", // bad via
	} {
		if _, err := ParseLine(line); err == nil || err == ErrNotEvent {
			t.Errorf("accepted: %q", line)
		}
	}
	for _, line := range []string{"", "ok", "BABEL 1.0", "version babeld-1.12.1", "garbage", "add", "\x00\xff"} {
		if _, err := ParseLine(line); err != ErrNotEvent {
			t.Errorf("%q: %v", line, err)
		}
	}
	// A flush with only the handle removes the route.
	tab := NewTable()
	ev, _ := ParseLine("add route 9 prefix fddd:1337:1338:1::/96 from ::/0 installed yes id r metric 96 refmetric 0 via fe80::1 if m0")
	tab.Apply(ev)
	ev, err := ParseLine("flush route 9")
	if err != nil {
		t.Fatal(err)
	}
	tab.Apply(ev)
	if len(tab.Best(inPLAT)) != 0 {
		t.Fatal("flush did not remove the route")
	}
}

func FuzzParseLine(f *testing.F) {
	f.Add("add route 55dea6d060d0 prefix fddd:1337:1338:cccc:cccc:cccc::/96 from ::/0 installed yes id 20:bb metric 96 refmetric 0 via fe80::1 if bc")
	f.Fuzz(func(t *testing.T, line string) {
		ev, err := ParseLine(line)
		if err == nil && ev.Route != nil && ev.Verb != "flush" && (ev.Route.Metric < 0 || ev.Route.Metric > Unreachable) {
			t.Fatalf("metric %d accepted", ev.Route.Metric)
		}
		_ = strings.TrimSpace(line)
	})
}

package l3roamd

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// The legacy backend's rules for node B (CLAT2, PLAT now P2) with one
// client from node1 whose sessions are at P1, one at home on P1 after a
// PLAT switch, and one at home on P2 (no rules). The kernel side is tested
// in e2e (TestRoamLegacyBackend).
func TestLegacyRulesMapRoamedClientsBothWays(t *testing.T) {
	p := netip.MustParsePrefix
	clat1, clat2 := p("fddd:1337:1337::1:0:0/96"), p("fddd:1337:1337::2:0:0/96")
	p1, p2 := p("fddd:1337:1338::1:0:0/96"), p("fddd:1337:1338::2:0:0/96")
	exp := time.Now().Add(time.Hour)
	d := &desired{own: clat2, plat: p2, xlat: map[netip.Addr]xlatState{
		netip.MustParseAddr("10.130.0.10"): {clatd: clat1, platc: p1, expires: exp}, // roamed here
		netip.MustParseAddr("10.130.0.11"): {clatd: clat2, platc: p1, expires: exp}, // stayed on its PLAT after a switch
		netip.MustParseAddr("10.130.0.12"): {clatd: clat2, platc: p2, expires: exp}, // nothing to do
	}}
	need := natNeeds(d)
	if len(need) != 2 {
		t.Fatalf("clients with rules: %v", need)
	}
	r := need[netip.MustParseAddr("10.130.0.10")]
	if r.me != netip.MustParseAddr("fddd:1337:1337::2:a82:a") || r.home != netip.MustParseAddr("fddd:1337:1337::1:a82:a") || r.platc != p1 {
		t.Errorf("roamed client: %+v", r)
	}
	if r := need[netip.MustParseAddr("10.130.0.11")]; r.home.IsValid() || r.platc != p1 {
		t.Errorf("client after the PLAT switch: %+v", r)
	}

	x := &xtState{clientDev: "br-client", clatDev: "clat", ranges: []netip.Prefix{p("fddd:1337:1337::/48"), p("fddd:1337:1338::/48")}}
	byPLATC := map[netip.Prefix][]setEntry{p1: {{addr: r.me}}}
	byCLATD := map[netip.Prefix][]setEntry{clat1: {{addr: r.me}}}
	var got []string
	for _, rule := range x.rules(d, byPLATC, byCLATD) {
		got = append(got, rule.table+": "+strings.Join(rule.spec, " "))
	}
	want := []string{
		"raw: -i br-client -s fddd:1337:1337::/48 -j DROP",
		"raw: -i br-client -s fddd:1337:1338::/48 -j DROP",
		// out: to the client's PLAT; in: back from it as if from the PLAT now
		"nat: -i clat -d " + p2.String() + " -m set --match-set l3r_pfddd13371338000000000001 src -j NETMAP --to " + p1.String(),
		"nat-post: -o clat -s " + p1.String() + " -m set --match-set l3r_pfddd13371338000000000001 dst -j NETMAP --to " + p2.String(),
		// in: to its home address; out: from it
		"nat: ! -i clat -m set --match-set l3r_home dst -j NETMAP --to " + clat2.String(),
		"nat-post: ! -o clat -s " + clat2.String() + " -m set --match-set l3r_cfddd13371337000000000001 src -j NETMAP --to " + clat1.String(),
	}
	if !slices.Equal(got, want) {
		t.Errorf("rules:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A restart reads the sets back; the first apply must not delete the
// conntrack entries of the sessions it keeps. Any change of a client's
// rules must: entries made under the old ones would clash with the new.
func TestLegacyConntrackIsCleanedOnlyOnAChange(t *testing.T) {
	p := netip.MustParsePrefix
	ip := netip.MustParseAddr("10.130.0.10")
	me, home := netip.MustParseAddr("fddd:1337:1337::2:a82:a"), netip.MustParseAddr("fddd:1337:1337::1:a82:a")
	d := &desired{own: p("fddd:1337:1337::2:0:0/96"), plat: p("fddd:1337:1338::2:0:0/96"), xlat: map[netip.Addr]xlatState{
		ip: {clatd: p("fddd:1337:1337::1:0:0/96"), platc: p("fddd:1337:1338::1:0:0/96")},
	}}
	if got := changedClients(natNeeds(d.clone()), natNeeds(d)); len(got) != 0 {
		t.Errorf("nothing changed, yet %v", got)
	}
	moved := d.clone()
	moved.plat = p("fddd:1337:1338::3:0:0/96")
	if got := changedClients(natNeeds(d), natNeeds(moved)); !slices.Equal(got, []netip.Addr{me, home}) {
		t.Errorf("after the node's PLAT switch: %v", got)
	}
	back := d.clone()
	back.plat = p("fddd:1337:1338::1:0:0/96")
	back.xlat[ip] = xlatState{clatd: back.own, platc: back.plat} // home again, on its PLAT: no rules
	if got := changedClients(natNeeds(d), natNeeds(back)); !slices.Equal(got, []netip.Addr{me, home}) {
		t.Errorf("a client whose rules are gone: %v", got)
	}
}

// clone copies d, for variants of a state.
func (d *desired) clone() *desired {
	c := *d
	c.xlat, c.roams = map[netip.Addr]xlatState{}, map[netip.Addr]roamed{}
	for k, v := range d.xlat {
		c.xlat[k] = v
	}
	for k, v := range d.roams {
		c.roams[k] = v
	}
	return &c
}

package clatd

import (
	"net/netip"
	"strings"
	"testing"
)

var required = []string{"-clat-prefix", "fddd:1337:1337:1234:5678:9abc::/96", "-client-net", "10.130.0.0/16"}

// clatd takes any number of RFC 7757 EAMs besides the client network's,
// each checked by siit.NewEAM, and the translator gets them all.
func TestEAMFlagRepeatable(t *testing.T) {
	c, err := parseFlags(append(required, "-eam", "192.0.2.0/24=2001:db8:1::/120", "-eam", "198.51.100.7/32=2001:db8:2::7/128"))
	if err != nil {
		t.Fatal(err)
	}
	sc, err := c.translatorConfig("fddd:1337:1338:1234:5678:9abc::/96")
	if err != nil {
		t.Fatal(err)
	}
	if len(sc.EAMs) != 3 || sc.EAMs[1].V6 != netip.MustParsePrefix("2001:db8:1::/120") || sc.EAMs[2].V4 != netip.MustParsePrefix("198.51.100.7/32") {
		t.Fatalf("EAMs %v", sc.EAMs)
	}
}

// A malformed EAM, or one whose IPv6 suffix cannot hold the IPv4 suffix
// (RFC 7757 section 3.2), is a flag error
// naming it (the daemon exits 2 with that line).
func TestEAMFlagRejectsBadMappings(t *testing.T) {
	for _, bad := range []string{"192.0.2.0/24", "192.0.2.0/24=nonsense", "192.0.2.0/24=2001:db8::/124"} {
		_, err := parseFlags(append(required, "-eam", bad))
		if err == nil || !strings.Contains(err.Error(), "eam") {
			t.Errorf("-eam %s: %v", bad, err)
		}
	}
}

// The fast path translates to a /96 PLAT prefix other than the
// Well-Known Prefix only; with any other (or none) it leaves every packet
// to the TUN.
func TestFastPathConfigTakesOnlyA96PLAT(t *testing.T) {
	c, err := parseFlags(required)
	if err != nil {
		t.Fatal(err)
	}
	for plat, want := range map[string]bool{
		"fddd:1337:1338:1234:5678:9abc::/96": true,
		"64:ff9b::/96":                       false,
		"fddd:1337:1338::/64":                false,
		"":                                   false,
	} {
		fc := c.fastPathConfig(plat)
		if fc.PLAT.IsValid() != want || fc.CLAT != c.clat || fc.ClientNet != c.clientNet {
			t.Errorf("%q: %+v", plat, fc)
		}
	}
}

// TestSetRoamedTakesIPv4AddressesOnly: l3roamd's set_roamed (the clients
// the fast path must leave to netfilter) is checked whole, and get_roamed
// gives back what it took, sorted, as l3roamd compares it.
func TestSetRoamedTakesIPv4AddressesOnly(t *testing.T) {
	d := &daemon{} // no fast path: the list is kept all the same
	cmds := d.commands()
	if _, err := cmds["set_roamed"]([]string{"10.130.0.9", "2001:db8::1"}); err == nil {
		t.Error("set_roamed took an IPv6 address")
	}
	if _, err := cmds["set_roamed"]([]string{"10.130.0.9", "10.130.0.10", "10.130.0.9"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := cmds["get_roamed"](nil); got != "10.130.0.9 10.130.0.10" {
		t.Errorf("get_roamed: %q", got)
	}
	if _, err := cmds["set_roamed"](nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := cmds["get_roamed"](nil); got != "" || len(d.getRoamed()) != 0 {
		t.Errorf("get_roamed after set_roamed with none: %q", got)
	}
}

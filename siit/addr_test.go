package siit

import (
	"net/netip"
	"testing"
)

// RFC 6052 section 2.4: the table of 192.0.2.33 embedded in each prefix length.
func TestRFC6052Section2_4Examples(t *testing.T) {
	v4 := []byte{192, 0, 2, 33}
	cases := []struct{ prefix, want string }{
		{"2001:db8::/32", "2001:db8:c000:221::"},
		{"2001:db8:100::/40", "2001:db8:1c0:2:21::"},
		{"2001:db8:122::/48", "2001:db8:122:c000:2:2100::"},
		{"2001:db8:122:300::/56", "2001:db8:122:3c0:0:221::"},
		{"2001:db8:122:344::/64", "2001:db8:122:344:c0:2:2100:0"},
		{"2001:db8:122:344::/96", "2001:db8:122:344::192.0.2.33"},
		{"64:ff9b::/96", "64:ff9b::192.0.2.33"},
	}
	for _, c := range cases {
		p, err := ParsePrefix6052(c.prefix)
		if err != nil {
			t.Fatalf("%s: %v", c.prefix, err)
		}
		var a [16]byte
		p.Embed(a[:], v4)
		if got, want := netip.AddrFrom16(a), netip.MustParseAddr(c.want); got != want {
			t.Errorf("embed in %s = %s, want %s", c.prefix, got, want)
		}
		var back [4]byte
		if !p.Extract(back[:], a[:]) || back != [4]byte{192, 0, 2, 33} {
			t.Errorf("extract from %s = %v", c.want, back)
		}
	}
}

// RFC 6052 section 2.2: only the six lengths are allowed.
func TestRFC6052Section2_2Validation(t *testing.T) {
	for _, bad := range []string{"2001:db8::/33", "2001:db8::/128", "10.0.0.0/8", "::ffff:10.0.0.0/104"} {
		if _, err := ParsePrefix6052(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// RFC 7757 section 3.2: EAM before pool6, longest match, suffix copied.
func TestRFC7757Section3_2EAMLookup(t *testing.T) {
	c := testConfig(t)
	e2, err := NewEAM(netip.MustParsePrefix("10.130.5.0/24"), netip.MustParsePrefix("2001:db8:5::/120"))
	if err != nil {
		t.Fatal(err)
	}
	c.EAMs = append(c.EAMs, e2)
	k, err := compile(c)
	if err != nil {
		t.Fatal(err)
	}
	var a6 [16]byte
	var a4 [4]byte
	for _, tc := range []struct{ v4, v6 string }{
		{"10.130.0.10", "fddd:1337:1337:1234:5678:9abc:a82:a"},      // /16 EAM
		{"10.130.5.7", "2001:db8:5::7"},                             // longer EAM wins
		{"198.51.100.1", "fddd:1337:1338:1234:5678:9abc:c633:6401"}, // pool6
	} {
		v4 := netip.MustParseAddr(tc.v4).As4()
		if !k.map4to6(a6[:], v4[:]) || netip.AddrFrom16(a6).String() != netip.MustParseAddr(tc.v6).String() {
			t.Errorf("4to6 %s = %s, want %s", tc.v4, netip.AddrFrom16(a6), tc.v6)
		}
		v6 := netip.MustParseAddr(tc.v6).As16()
		if !k.map6to4(a4[:], v6[:]) || netip.AddrFrom4(a4).String() != tc.v4 {
			t.Errorf("6to4 %s = %s, want %s", tc.v6, netip.AddrFrom4(a4), tc.v4)
		}
	}
	if _, err := NewEAM(netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/64")); err == nil {
		t.Error("EAM with unequal suffix lengths accepted (RFC 7757 section 3.1)")
	}
	// Special addresses have no pool6 mapping.
	for _, s := range []string{"127.0.0.1", "224.0.0.1", "0.1.2.3", "255.255.255.255"} {
		v4 := netip.MustParseAddr(s).As4()
		if k.map4to6(a6[:], v4[:]) {
			t.Errorf("%s mapped", s)
		}
	}
}

func TestEAMHostBitsNotOctetAligned(t *testing.T) {
	e, err := NewEAM(netip.MustParsePrefix("192.0.2.0/27"), netip.MustParsePrefix("2001:db8::20/123"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := compile(Config{EAMs: []EAM{e}})
	if err != nil {
		t.Fatal(err)
	}
	var a6 [16]byte
	v4 := netip.MustParseAddr("192.0.2.17").As4()
	if !k.map4to6(a6[:], v4[:]) || netip.AddrFrom16(a6) != netip.MustParseAddr("2001:db8::31") {
		t.Fatalf("got %s", netip.AddrFrom16(a6))
	}
}

package siit

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"testing"

	"github.com/gluon-464xlat/gluon-464xlat/header"
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
		if !k.map4to6(a6[:], v4[:], true) || netip.AddrFrom16(a6).String() != netip.MustParseAddr(tc.v6).String() {
			t.Errorf("4to6 %s = %s, want %s", tc.v4, netip.AddrFrom16(a6), tc.v6)
		}
		v6 := netip.MustParseAddr(tc.v6).As16()
		if !k.map6to4(a4[:], v6[:], false) || netip.AddrFrom4(a4).String() != tc.v4 {
			t.Errorf("6to4 %s = %s, want %s", tc.v6, netip.AddrFrom4(a4), tc.v4)
		}
	}
	// Special addresses have no pool6 mapping.
	for _, s := range []string{"127.0.0.1", "224.0.0.1", "0.1.2.3", "255.255.255.255"} {
		v4 := netip.MustParseAddr(s).As4()
		if k.map4to6(a6[:], v4[:], true) {
			t.Errorf("%s mapped", s)
		}
	}
}

// RFC 7757 section 3.2: the IPv6 suffix may be longer than the IPv4 one
// (Appendix B maps 192.0.2.128/26 to 2001:db8:dddd::/64); the IPv4 suffix
// follows the IPv6 prefix. A shorter IPv6 suffix cannot hold the IPv4 one.
func TestRFC7757Section3_2SuffixLengths(t *testing.T) {
	e, err := NewEAM(netip.MustParsePrefix("192.0.2.128/26"), netip.MustParsePrefix("2001:db8:dddd::/64"))
	if err != nil {
		t.Fatalf("RFC 7757 Appendix B's EAM refused: %v", err)
	}
	k, err := compile(Config{EAMs: []EAM{e}})
	if err != nil {
		t.Fatal(err)
	}
	var a6 [16]byte
	var a4 [4]byte
	for _, tc := range []struct{ v4, v6 string }{
		{"192.0.2.128", "2001:db8:dddd::"},
		{"192.0.2.152", "2001:db8:dddd:0:6000::"},
		{"192.0.2.191", "2001:db8:dddd:0:fc00::"},
	} {
		v4 := netip.MustParseAddr(tc.v4).As4()
		if !k.map4to6(a6[:], v4[:], true) || netip.AddrFrom16(a6) != netip.MustParseAddr(tc.v6) {
			t.Errorf("4to6 %s = %s, want %s", tc.v4, netip.AddrFrom16(a6), tc.v6)
		}
		// Towards IPv4 the bits after the IPv4 suffix do not count.
		v6 := netip.MustParseAddr(tc.v6).As16()
		v6[15] |= 0x5a
		if !k.map6to4(a4[:], v6[:], false) || netip.AddrFrom4(a4).String() != tc.v4 {
			t.Errorf("6to4 %s = %s, want %s", netip.AddrFrom16(v6), netip.AddrFrom4(a4), tc.v4)
		}
	}
	if _, err := NewEAM(netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/112")); err == nil {
		t.Error("EAM whose IPv4 suffix (24 bits) is longer than its IPv6 suffix (16) accepted")
	}
}

// RFC 7757 section 4.2.2: traffic between two EAM-mapped IPv6 hosts through
// their IPv4 addresses turns back to IPv6 in the translator, the source
// mapped through the pool; the corpus's hairpinning cases, with only the
// two hosts' EAMs.
func TestRFC7757Section4_2_2IntrinsicHairpinning(t *testing.T) {
	pool, _ := ParsePrefix6052(rfc7757Pool + "/40")
	a, _ := NewEAM(netip.MustParsePrefix("192.0.2.1/32"), netip.MustParsePrefix("2001:db8:aaaa::/128"))
	b, _ := NewEAM(netip.MustParsePrefix("192.0.2.2/32"), netip.MustParsePrefix("2001:db8:bbbb::b/128"))
	tr, err := New(Config{Pool6: pool, EAMs: []EAM{a, b}, Addr6: netip.MustParseAddr("2001:db8::64")})
	if err != nil {
		t.Fatal(err)
	}
	cb := &corpusBuilder{t: t}
	cb.hairpinning()
	for _, c := range cb.cases {
		in, _ := hex.DecodeString(c.In)
		res, _ := run(t, tr, in, header.Offload{})
		if len(res) != len(c.Out) {
			t.Fatalf("%s: %d packets out, want %d", c.Name, len(res), len(c.Out))
		}
		want, _ := hex.DecodeString(c.Out[0])
		if !bytes.Equal(normalize(res[0]), normalize(want)) {
			t.Errorf("%s (%s):\n got % x\nwant % x", c.Name, c.RFC, res[0], want)
		}
	}
	var s Snapshot
	s.Add(&tr.Stats)
	if s.Hairpinned != 5 {
		t.Errorf("hairpinned = %d, want 5", s.Hairpinned)
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
	if !k.map4to6(a6[:], v4[:], true) || netip.AddrFrom16(a6) != netip.MustParseAddr("2001:db8::31") {
		t.Fatalf("got %s", netip.AddrFrom16(a6))
	}
}

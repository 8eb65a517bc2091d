package siit

import (
	"fmt"
	"net/netip"
)

// Prefix6052 is an RFC 6052 IPv4-embedding prefix of length 32, 40, 48, 56,
// 64 or 96.
type Prefix6052 struct {
	addr [16]byte
	bits int
}

// ParsePrefix6052 parses an IPv6 prefix such as "64:ff9b::/96" and checks
// its length (RFC 6052 section 2.2).
func ParsePrefix6052(s string) (Prefix6052, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return Prefix6052{}, err
	}
	return NewPrefix6052(p)
}

// NewPrefix6052 checks p against RFC 6052 section 2.2.
func NewPrefix6052(p netip.Prefix) (Prefix6052, error) {
	if !p.Addr().Is6() || p.Addr().Is4In6() && p.Bits() < 96 {
		return Prefix6052{}, fmt.Errorf("%s: not an IPv6 prefix", p)
	}
	switch p.Bits() {
	case 32, 40, 48, 56, 64, 96:
	default:
		return Prefix6052{}, fmt.Errorf("%s: RFC 6052 prefix length must be 32, 40, 48, 56, 64 or 96", p)
	}
	// RFC 6052 section 2.2 also asks for a zero u octet (bits 64-71) in a
	// /96; DESIGN.md derives each node's /96 from its MAC, which puts a MAC
	// byte there, so that rule is not enforced. Shorter prefixes end before
	// bit 64, and Embed keeps the u octet zero for them.
	a := p.Masked().Addr().As16()
	return Prefix6052{addr: a, bits: p.Bits()}, nil
}

// Prefix returns the prefix in netip form.
func (p Prefix6052) Prefix() netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom16(p.addr), p.bits)
}

// Valid reports whether the prefix was set.
func (p Prefix6052) Valid() bool { return p.bits != 0 }

func (p Prefix6052) String() string { return p.Prefix().String() }

// Embed writes the IPv6 address for v4 into dst (RFC 6052 section 2.2).
func (p Prefix6052) Embed(dst []byte, v4 []byte) {
	copy(dst[:16], p.addr[:])
	pos := p.positions()
	dst[pos[0]], dst[pos[1]], dst[pos[2]], dst[pos[3]] = v4[0], v4[1], v4[2], v4[3]
}

// Extract writes the IPv4 address embedded in a (RFC 6052 section 2.3) and
// reports whether a is inside the prefix.
func (p Prefix6052) Extract(dst []byte, a []byte) bool {
	if !p.Contains(a) {
		return false
	}
	pos := p.positions()
	dst[0], dst[1], dst[2], dst[3] = a[pos[0]], a[pos[1]], a[pos[2]], a[pos[3]]
	return true
}

// Contains reports whether the IPv6 address a is inside the prefix; for
// prefixes shorter than /96 the suffix after the IPv4 bits is not checked,
// as RFC 6052 section 2.2 tells receivers to ignore it.
func (p Prefix6052) Contains(a []byte) bool {
	n := p.bits / 8
	for i := 0; i < n; i++ {
		if a[i] != p.addr[i] {
			return false
		}
	}
	return true
}

func (p Prefix6052) positions() [4]int {
	switch p.bits {
	case 32:
		return [4]int{4, 5, 6, 7}
	case 40:
		return [4]int{5, 6, 7, 9}
	case 48:
		return [4]int{6, 7, 9, 10}
	case 56:
		return [4]int{7, 9, 10, 11}
	case 64:
		return [4]int{9, 10, 11, 12}
	}
	return [4]int{12, 13, 14, 15}
}

// EAM is one RFC 7757 Explicit Address Mapping: an IPv4 prefix and an IPv6
// prefix. The IPv4 suffix (host bits) follows the IPv6 prefix; an IPv6
// suffix longer than the IPv4 one has its remaining bits zero towards IPv6
// and ignored towards IPv4 (RFC 7757 section 3.2 and the mappings of its
// Appendix B, e.g. 192.0.2.128/26 with 2001:db8:dddd::/64).
type EAM struct {
	V4 netip.Prefix
	V6 netip.Prefix
}

// eamEntry is the EAM in the byte form the per-packet path compares.
type eamEntry struct {
	v4     [4]byte
	v4bits int
	v6     [16]byte
	v6bits int
}

// NewEAM checks an EAM: the IPv6 suffix must hold the whole IPv4 suffix
// (RFC 7757 section 3.2), or IPv4 addresses would collapse onto each other.
func NewEAM(v4, v6 netip.Prefix) (EAM, error) {
	if !v4.IsValid() || !v6.IsValid() || !v4.Addr().Is4() || !v6.Addr().Is6() || v6.Addr().Is4In6() {
		return EAM{}, fmt.Errorf("EAM %s %s: need an IPv4 and an IPv6 prefix", v4, v6)
	}
	if 32-v4.Bits() > 128-v6.Bits() {
		return EAM{}, fmt.Errorf("EAM %s %s: the IPv4 suffix (%d bits) is longer than the IPv6 suffix (%d bits; RFC 7757 section 3.2)", v4, v6, 32-v4.Bits(), 128-v6.Bits())
	}
	return EAM{V4: v4.Masked(), V6: v6.Masked()}, nil
}

func (e EAM) entry() eamEntry {
	return eamEntry{v4: e.V4.Addr().As4(), v4bits: e.V4.Bits(), v6: e.V6.Addr().As16(), v6bits: e.V6.Bits()}
}

// prefixMatch reports whether the first bits of a and p are equal.
func prefixMatch(a, p []byte, bits int) bool {
	n := bits / 8
	for i := 0; i < n; i++ {
		if a[i] != p[i] {
			return false
		}
	}
	if r := bits % 8; r != 0 {
		m := byte(0xff << (8 - r))
		return a[n]&m == p[n]&m
	}
	return true
}

// to6 sets dst to the EAM's IPv6 address for v4 (RFC 7757 section 3.2).
func (e *eamEntry) to6(dst, v4 []byte) {
	mapHostBits(dst, e.v6[:], e.v6bits, v4, e.v4bits, 32-e.v4bits)
}

// to4 sets dst to the EAM's IPv4 address for v6: the bits right after the
// IPv6 prefix; further suffix bits do not matter.
func (e *eamEntry) to4(dst, v6 []byte) {
	mapHostBits(dst, e.v4[:], e.v4bits, v6, e.v6bits, 32-e.v4bits)
}

// mapHostBits sets dst to the prefix p (pbits long) followed by the host
// bits of src that follow its sbits-long prefix.
func mapHostBits(dst, p []byte, pbits int, src []byte, sbits, host int) {
	if len(dst)*8-pbits == host && len(src)*8-sbits == host {
		copyHostBits(dst, p, src, host) // the common EAM: both suffixes as long
		return
	}
	copy(dst, p)
	copyBits(dst, pbits, src, sbits, host)
}

// copyHostBits sets dst to the prefix p followed by the last host bits of
// src (the common EAM, both suffixes equally long). Whole octets are copied;
// at most one is masked.
func copyHostBits(dst, p []byte, src []byte, host int) {
	copy(dst, p)
	full := host / 8
	for k := 1; k <= full; k++ {
		dst[len(dst)-k] = src[len(src)-k]
	}
	if r := host % 8; r != 0 {
		m := byte(1<<r - 1)
		i, j := len(dst)-full-1, len(src)-full-1
		dst[i] = dst[i]&^m | src[j]&m
	}
}

// copyBits copies n bits of src from bit offset so to dst at bit offset do
// (bit 0 is the most significant bit of byte 0). At most 32 bits: the IPv4
// suffix of an EAM whose IPv6 suffix is longer.
func copyBits(dst []byte, do int, src []byte, so int, n int) {
	for i := 0; i < n; i++ {
		s, d := so+i, do+i
		bit := src[s/8] >> (7 - s%8) & 1
		m := byte(1) << (7 - d%8)
		dst[d/8] = dst[d/8]&^m | bit<<(7-d%8)
	}
}

// isSpecial4 reports IPv4 addresses that a translator never emits from or to
// (RFC 7915 section 4.1 via RFC 6890: unspecified, loopback, multicast,
// limited broadcast, "this network").
func isSpecial4(a []byte) bool {
	return a[0] == 0 || a[0] == 127 || a[0] >= 224
}

// wellKnownPrefix is 64:ff9b::/96 (RFC 6052 section 2.1).
var wellKnownPrefix = [16]byte{0, 0x64, 0xff, 0x9b}

// WellKnown reports whether p is the Well-Known Prefix 64:ff9b::/96.
func (p Prefix6052) WellKnown() bool { return p.bits == 96 && p.addr == wellKnownPrefix }

// nonGlobal4 are the IPv4 ranges that are not global (RFC 5735 section 3,
// less 192.88.99.0/24, which is routed globally; plus RFC 6598's shared
// space): RFC 6052 section 3.1 forbids them behind the Well-Known Prefix.
var nonGlobal4 = [...]mask4{
	{0x00000000, 0xff000000}, // 0/8
	{0x0a000000, 0xff000000}, // 10/8
	{0x64400000, 0xffc00000}, // 100.64/10
	{0x7f000000, 0xff000000}, // 127/8
	{0xa9fe0000, 0xffff0000}, // 169.254/16
	{0xac100000, 0xfff00000}, // 172.16/12
	{0xc0000000, 0xffffff00}, // 192.0.0/24
	{0xc0000200, 0xffffff00}, // 192.0.2/24
	{0xc0a80000, 0xffff0000}, // 192.168/16
	{0xc6120000, 0xfffe0000}, // 198.18/15
	{0xc6336400, 0xffffff00}, // 198.51.100/24
	{0xcb007100, 0xffffff00}, // 203.0.113/24
	{0xe0000000, 0xe0000000}, // 224/4, 240/4 and 255.255.255.255
}

// isNonGlobal4 reports an address in nonGlobal4.
func isNonGlobal4(a []byte) bool {
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	for _, m := range nonGlobal4 {
		if v&m.mask == m.addr {
			return true
		}
	}
	return false
}

// isSpecial6 reports IPv6 addresses that are never translated: unspecified,
// loopback, link-local and multicast.
func isSpecial6(a []byte) bool {
	if a[0] == 0xff || a[0] == 0xfe && a[1]&0xc0 == 0x80 {
		return true
	}
	for i := 0; i < 15; i++ {
		if a[i] != 0 {
			return false
		}
	}
	return a[15] <= 1
}

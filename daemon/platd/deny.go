package platd

import "net/netip"

// specialPurpose4 is the IPv4 space a PLAT must not reach for the mesh
// unless allowed: RFC 6890's special-purpose registry entries that are not
// globally reachable (RFC 1918 private space among them).
var specialPurpose4 = []string{
	"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
	"172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15",
	"198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
}

// denyList is the special-purpose space minus what -allow lets through.
// (By hand rather than with go4.org/netipx's IPSet: one subtraction of
// prefixes did not pay for 28 KiB of MIPS code.)
func denyList(allow []netip.Prefix) []netip.Prefix {
	var deny []netip.Prefix
	for _, s := range specialPurpose4 {
		deny = append(deny, netip.MustParsePrefix(s))
	}
	for _, a := range allow {
		var next []netip.Prefix
		for _, d := range deny {
			next = append(next, subtract(d, a.Masked())...)
		}
		deny = next
	}
	return deny
}

// subtract returns d without a, as prefixes: all of d, none of it (a holds
// d), or the siblings of the path from d down to a.
func subtract(d, a netip.Prefix) []netip.Prefix {
	switch {
	case !d.Overlaps(a):
		return []netip.Prefix{d}
	case a.Bits() <= d.Bits():
		return nil
	}
	var out []netip.Prefix
	for bits := d.Bits() + 1; bits <= a.Bits(); bits++ {
		// the half at this level that does not lead to a
		on := netip.PrefixFrom(a.Addr(), bits).Masked()
		out = append(out, sibling(on))
	}
	return out
}

// sibling is the other half of p's parent prefix.
func sibling(p netip.Prefix) netip.Prefix {
	b := p.Addr().As4()
	i := p.Bits() - 1
	b[i/8] ^= 0x80 >> (i % 8)
	return netip.PrefixFrom(netip.AddrFrom4(b), p.Bits())
}

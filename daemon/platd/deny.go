package platd

import (
	"net/netip"

	"go4.org/netipx"
)

// specialPurpose4 is the IPv4 space a PLAT must not reach for the mesh
// unless allowed: RFC 6890's special-purpose registry entries that are not
// globally reachable (RFC 1918 private space among them).
var specialPurpose4 = []string{
	"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
	"172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15",
	"198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
}

// denyList is the special-purpose space minus what -allow lets through.
func denyList(allow []netip.Prefix) []netip.Prefix {
	var b netipx.IPSetBuilder
	for _, s := range specialPurpose4 {
		b.AddPrefix(netip.MustParsePrefix(s))
	}
	for _, a := range allow {
		b.RemovePrefix(a)
	}
	set, _ := b.IPSet()
	return set.Prefixes()
}

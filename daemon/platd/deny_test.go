package platd

import (
	"net/netip"
	"testing"
)

// -allow takes ranges out of the special-purpose deny list: exactly those
// addresses, whatever the prefixes' alignment.
func TestDenyListMinusAllow(t *testing.T) {
	allow := []netip.Prefix{netip.MustParsePrefix("10.1.2.0/24"), netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("198.51.100.7/32")}
	deny := denyList(allow)
	denied := func(s string) bool {
		a := netip.MustParseAddr(s)
		for _, p := range deny {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	for s, want := range map[string]bool{
		"10.0.0.1": true, "10.1.1.255": true, "10.1.2.0": false, "10.1.2.255": false, "10.1.3.0": true, "10.255.255.255": true,
		"192.168.1.1": false, "198.51.100.6": true, "198.51.100.7": false, "198.51.100.8": true,
		"127.0.0.1": true, "8.8.8.8": false, "224.0.0.1": true, "255.255.255.255": true,
	} {
		if denied(s) != want {
			t.Errorf("%s denied = %v, want %v (deny list %v)", s, !want, want, deny)
		}
	}
	// no overlaps: each address in one prefix at most
	for i, p := range deny {
		for _, q := range deny[i+1:] {
			if p.Overlaps(q) {
				t.Errorf("%s overlaps %s", p, q)
			}
		}
	}
	if len(denyList(nil)) != len(specialPurpose4) {
		t.Errorf("no -allow: %v", denyList(nil))
	}
}

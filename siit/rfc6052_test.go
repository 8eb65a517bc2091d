package siit

import (
	"net"
	"testing"

	"github.com/gluon-464xlat/gluon-464xlat/header"
	"github.com/gopacket/gopacket/layers"
)

// RFC 6052 section 3.1: behind the Well-Known Prefix 64:ff9b::/96 a
// translator MUST NOT translate non-global IPv4 addresses (RFC 1918, RFC
// 5735 section 3, RFC 6598) and MUST drop such packets, in both
// directions; a network-specific prefix (the mesh's PLAT /96) may carry
// them, and 169.254.0.0/16 (RFC 3927) is translated there like any other.
func TestRFC6052Section3_1NonGlobalBehindTheWellKnownPrefix(t *testing.T) {
	wkp, err := ParsePrefix6052("64:ff9b::/96")
	if err != nil {
		t.Fatal(err)
	}
	tr, err := New(Config{Pool6: wkp})
	if err != nil {
		t.Fatal(err)
	}
	global4, global6 := net.IPv4(8, 8, 8, 8).To4(), net.ParseIP("64:ff9b::808:808")
	for _, a := range []string{"10.1.2.3", "100.64.0.1", "169.254.1.1", "172.16.0.1", "192.0.2.1", "192.168.1.1", "198.18.0.1", "198.51.100.1", "203.0.113.1"} {
		v4 := net.ParseIP(a).To4()
		pkt := build(t, ip4(layers.IPProtocolUDP, global4, v4), &layers.UDP{SrcPort: 1, DstPort: 2}, payloadOf(10))
		if res, r := run(t, tr, pkt, header.Offload{}); r != DropUntranslatableDst || len(res) != 0 {
			t.Errorf("4->6 to %s behind the WKP: %v, %d packets", a, r, len(res))
		}
		v6 := append(net.ParseIP("64:ff9b::").To16()[:12:12], v4...)
		pkt = build(t, ip6(layers.IPProtocolUDP, v6, global6), &layers.UDP{SrcPort: 1, DstPort: 2}, payloadOf(10))
		res, r := run(t, tr, pkt, header.Offload{})
		if r != DropUntranslatableSrc {
			t.Errorf("6->4 from %s behind the WKP: %v", a, r)
		}
		for _, p := range res { // at most the ICMPv6 error of RFC 7915 section 5.4
			if p[0]>>4 != 6 || p[40] != 1 {
				t.Errorf("6->4 from %s behind the WKP: sent % x", a, p[:min(len(p), 48)])
			}
		}
	}
	one(t, tr, build(t, ip4(layers.IPProtocolUDP, net.IPv4(1, 1, 1, 1).To4(), global4), &layers.UDP{SrcPort: 1, DstPort: 2}, payloadOf(10)))

	nsp := newT(t) // the mesh's network-specific PLAT /96
	for _, a := range []string{"192.168.1.1", "169.254.1.1"} {
		one(t, nsp, build(t, ip4(layers.IPProtocolUDP, client4, net.ParseIP(a).To4()), &layers.UDP{SrcPort: 1, DstPort: 2}, payloadOf(10)))
	}
}

package l3roamd

import (
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// RFC 4291 section 2.7.1: FF02:0:0:0:0:1:FFXX:XXXX, the low 24 bits of the address.
func TestRFC4291Section2_7_1SolicitedNodeGroup(t *testing.T) {
	got := solicitedNode(netip.MustParseAddr("fd42:1ab:0:1:4:aabb:cc12:3456"))
	if want := netip.MustParseAddr("ff02::1:ff12:3456"); got != want {
		t.Fatalf("%s, want %s", got, want)
	}
}

// RFC 4861 section 4.3: the solicitation a SEEK sends is a Neighbor
// Solicitation for the target with this node's link-layer address, as a
// decoder of the RFC's format reads it.
func TestRFC4861Section4_3SolicitationForASEEK(t *testing.T) {
	target := netip.MustParseAddr("fd42:1ab:0:1::5ee1")
	mac, _ := net.ParseMAC("16:41:95:40:f7:dc")
	b := neighborSolicitation(target, mac)
	p := gopacket.NewPacket(b, layers.LayerTypeICMPv6, gopacket.Default)
	icmp, _ := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
	ns, _ := p.Layer(layers.LayerTypeICMPv6NeighborSolicitation).(*layers.ICMPv6NeighborSolicitation)
	if icmp == nil || ns == nil || icmp.TypeCode != layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborSolicitation, 0) {
		t.Fatalf("not a Neighbor Solicitation: %v", p)
	}
	if got, _ := netip.AddrFromSlice(ns.TargetAddress); got != target {
		t.Errorf("target %s", got)
	}
	if len(ns.Options) != 1 || ns.Options[0].Type != layers.ICMPv6OptSourceAddress || net.HardwareAddr(ns.Options[0].Data).String() != mac.String() {
		t.Errorf("options %v, want the source link-layer address %s", ns.Options, mac)
	}
}

// RFC 4861 sections 4.4 and 7.1.2: an answer is learned only with its
// target link-layer address (a unicast MAC), from a well-formed message.
func TestRFC4861Section4_4AdvertisementParsing(t *testing.T) {
	target := netip.MustParseAddr("fd42:1ab:0:1::5ee1")
	na := func(code byte, opts ...byte) []byte {
		b := make([]byte, 24, 24+len(opts))
		b[0], b[1], b[4] = 136, code, 0x60 // solicited, override
		t16 := target.As16()
		copy(b[8:], t16[:])
		return append(b, opts...)
	}
	tlla := []byte{2, 1, 0x02, 0xc1, 0x1e, 0, 0, 0x0a}
	for _, c := range []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"with the target link-layer address", na(0, tlla...), true},
		{"after another option", na(0, append([]byte{14, 1, 1, 2, 3, 4, 5, 6}, tlla...)...), true},
		{"without it", na(0), false},
		{"a multicast MAC", na(0, 2, 1, 0x33, 0x33, 0, 0, 0, 1), false},
		{"code not 0", na(1, tlla...), false},
		{"an option of length 0", na(0, 2, 0, 0, 0, 0, 0, 0, 0), false},
		{"an option longer than the message", na(0, 2, 2, 1, 2, 3, 4, 5, 6), false},
		{"truncated", na(0, tlla...)[:20], false},
		{"a solicitation", append([]byte{135}, na(0, tlla...)[1:]...), false},
	} {
		got, mac, ok := parseNeighborAdvertisement(c.b)
		if ok != c.ok || (ok && (got != target || mac.String() != "02:c1:1e:00:00:0a")) {
			t.Errorf("%s: %s %s %v, want ok=%v", c.name, got, mac, ok, c.ok)
		}
	}
}

package siit

import (
	"net"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/gluon-464xlat/gluon-464xlat/header"
)

// listClients is a ClientMap for the translator's side of the contract
// (platd's real one is tested with the kernel in e2e): addresses from
// 198.18.0.2 on, at most max of them.
type listClients struct {
	by6 map[[16]byte][4]byte
	by4 map[[4]byte][16]byte
	max int
}

func (c *listClients) To4(v6 [16]byte, add bool) ([4]byte, bool) {
	a, ok := c.by6[v6]
	if !ok && add && len(c.by6) < c.max {
		a, ok = [4]byte{198, 18, 0, byte(2 + len(c.by6))}, true
		c.by6[v6], c.by4[a] = a, v6
	}
	return a, ok
}

func (c *listClients) To6(v4 [4]byte) ([16]byte, bool, bool) {
	a, ok := c.by4[v4]
	return a, ok, v4[0] == 198 && v4[1] == 18
}

// A PLAT's per-client mapping (platd): RFC 7757 EAMs of one address each,
// made by the first packet that may open a session, checked before the
// RFC 6052 pool (section 3.2) in both directions.
func TestRFC7757Section3_2ClientMapBeforePool(t *testing.T) {
	clients := &listClients{by6: map[[16]byte][4]byte{}, by4: map[[4]byte][16]byte{}, max: 1}
	c := testConfig(t)
	c.EAMs, c.Clients = nil, clients
	tr, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	a := net.ParseIP("fddd:1337:1337:1::a82:a")
	b := net.ParseIP("fddd:1337:1337:2::a82:a")
	udp := func(src, dst net.IP) []byte {
		u := &layers.UDP{SrcPort: 40000, DstPort: 53}
		return build(t, ip6(layers.IPProtocolUDP, src, dst), u, payloadOf(8))
	}
	// An ICMPv6 error from an unmapped client opens nothing: no address.
	ptb := build(t, ip6(layers.IPProtocolICMPv6, a, server6),
		&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(1, 4)}, payloadOf(4), payloadOf(48))
	run(t, tr, ptb, header.Offload{})
	if len(clients.by6) != 0 {
		t.Fatalf("an ICMPv6 error made a mapping: %v", clients.by6)
	}
	// The first packet maps the client; the same address comes back.
	out := decode(one(t, tr, udp(a, server6)))
	if got := out.Layer(layers.LayerTypeIPv4).(*layers.IPv4); !got.SrcIP.Equal(net.IPv4(198, 18, 0, 2)) || !got.DstIP.Equal(server4) {
		t.Fatalf("6->4 %v -> %v, want 198.18.0.2 -> %v", got.SrcIP, got.DstIP, server4)
	}
	// The reply goes to the client's IPv6 address, the server's from the pool.
	reply := build(t, ip4(layers.IPProtocolUDP, server4, net.IPv4(198, 18, 0, 2)), &layers.UDP{SrcPort: 53, DstPort: 40000}, payloadOf(8))
	out = decode(one(t, tr, reply))
	if got := out.Layer(layers.LayerTypeIPv6).(*layers.IPv6); !got.DstIP.Equal(a) || !got.SrcIP.Equal(server6) {
		t.Fatalf("4->6 %v -> %v, want %v -> %v", got.SrcIP, got.DstIP, server6, a)
	}
	// To an address of the map's that no client has: untranslatable, not
	// the RFC 6052 pool's.
	reply = build(t, ip4(layers.IPProtocolUDP, server4, net.IPv4(198, 18, 0, 3)), &layers.UDP{SrcPort: 53, DstPort: 40000}, payloadOf(8))
	if _, r := run(t, tr, reply, header.Offload{}); r != DropUntranslatableDst {
		t.Fatalf("to an unmapped client address: %v, want %v", r, DropUntranslatableDst)
	}
	// No address left: refused with Destination Unreachable, administratively
	// prohibited (RFC 7915 section 5.4), counted as an untranslatable source.
	res, r := run(t, tr, udp(b, server6), header.Offload{})
	if r != DropUntranslatableSrc || len(res) != 1 {
		t.Fatalf("pool used up: %v, %d packets; want %v and an ICMPv6 error", r, len(res), DropUntranslatableSrc)
	}
	if e := decode(res[0]).Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6); e.TypeCode != layers.CreateICMPv6TypeCode(1, 1) {
		t.Fatalf("refusal %v, want destination unreachable, administratively prohibited", e.TypeCode)
	}
}

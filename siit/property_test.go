package siit

import (
	"bytes"
	"encoding/binary"
	"math/rand"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gluon-464xlat/gluon-464xlat/header"
)

// randomPacket4 builds a TCP, UDP or ICMP echo packet from a client to the
// Internet with random fields; DF follows section 5.1's rule so that the
// way back reproduces it.
func randomPacket4(t testing.TB, rng *rand.Rand) []byte {
	src := net.IPv4(10, 130, byte(rng.Intn(256)), byte(1+rng.Intn(254))).To4()
	dst := net.IPv4(byte(1+rng.Intn(126)), byte(rng.Intn(256)), byte(rng.Intn(256)), byte(1+rng.Intn(254))).To4()
	n := rng.Intn(1400)
	var l4 gopacket.SerializableLayer
	var proto layers.IPProtocol
	switch rng.Intn(3) {
	case 0:
		proto, l4 = layers.IPProtocolTCP, &layers.TCP{SrcPort: layers.TCPPort(rng.Intn(65536)), DstPort: 443, Seq: rng.Uint32(), Ack: rng.Uint32(), ACK: true, PSH: rng.Intn(2) == 0, Window: uint16(rng.Intn(65536))}
	case 1:
		proto, l4 = layers.IPProtocolUDP, &layers.UDP{SrcPort: layers.UDPPort(rng.Intn(65536)), DstPort: 53}
	default:
		proto, l4 = layers.IPProtocolICMPv4, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(uint8(8*rng.Intn(2)), 0), Id: uint16(rng.Intn(65536)), Seq: uint16(rng.Intn(65536))}
	}
	l3 := ip4(proto, src, dst)
	l3.TOS = uint8(rng.Intn(256))
	l3.TTL = uint8(4 + rng.Intn(250)) // three translations ahead, each a hop
	pkt := build(t, l3, l4, payloadOf(n))
	if len(pkt) <= 1260 {
		header.IPv4(pkt).SetFlagsOffset(false, false, 0)
		header.IPv4(pkt).SetChecksum()
	}
	return pkt
}

// Property: 4->6->4 gives back the original packet, modulo TTL (each
// translation is a router hop), Identification and the header checksum.
func TestRoundTrip4to6to4(t *testing.T) {
	tr := newT(t)
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 2000; i++ {
		orig := randomPacket4(t, rng)
		six := one(t, tr, orig)
		back := one(t, tr, six)
		a, b := append([]byte(nil), orig...), append([]byte(nil), back...)
		for _, p := range [][]byte{a, b} {
			p[4], p[5], p[8], p[10], p[11] = 0, 0, 0, 0, 0
		}
		if !bytes.Equal(a, b) {
			t.Fatalf("round trip %d differs:\n% x\n% x", i, orig, back)
		}
		if back[8] != orig[8]-2 {
			t.Fatalf("TTL %d -> %d, want two hops less", orig[8], back[8])
		}
	}
}

// Property: 6->4->6 gives back the original packet, modulo the hop limit.
func TestRoundTrip6to4to6(t *testing.T) {
	tr := newT(t)
	rng := rand.New(rand.NewSource(2))
	for i := 0; i < 2000; i++ {
		four := randomPacket4(t, rng)
		// Make an IPv6 original by translating once, then go 6->4->6.
		orig := one(t, tr, four)
		back := one(t, tr, one(t, tr, orig))
		a, b := append([]byte(nil), orig...), append([]byte(nil), back...)
		a[7], b[7] = 0, 0
		if !bytes.Equal(a, b) {
			t.Fatalf("round trip %d differs:\n% x\n% x", i, orig, back)
		}
	}
}

// A TCP super-packet from a TUN with offloads (partial checksum, GSO) is
// translated whole: the GSO type changes family, the pseudo-header partial
// checksum is moved, the segment size is kept.
func TestGSOSuperPacketTranslatedWhole(t *testing.T) {
	tr := newT(t)
	pkt := build(t, ip4(layers.IPProtocolTCP, client4, server4), &layers.TCP{SrcPort: 40000, DstPort: 5201, Seq: 7, ACK: true, Window: 512}, payloadOf(60000))
	// Turn it into what the kernel hands a TUN: checksum field = folded pseudo-header sum.
	l4len := len(pkt) - 20
	binary.BigEndian.PutUint16(pkt[36:], header.Fold(header.PseudoSum(client4, server4, header.ProtoTCP, l4len)))
	res, r := run(t, tr, pkt, header.Offload{GSOType: header.GSOTCPv4, GSOSize: 1448, NeedsCsum: true})
	if r != OK || len(res) != 1 {
		t.Fatalf("%v %d", r, len(res))
	}
	out := res[0]
	if len(out) != 40+l4len {
		t.Fatalf("length %d", len(out))
	}
	want := header.Fold(header.PseudoSum(client6.To16(), server6.To16(), header.ProtoTCP, l4len))
	if got := binary.BigEndian.Uint16(out[56:]); got != want {
		t.Fatalf("partial checksum %#x, want %#x", got, want)
	}
	var batch Batch
	buf := make([]byte, Headroom+len(pkt))
	copy(buf[Headroom:], pkt)
	binary.BigEndian.PutUint16(buf[Headroom+36:], header.Fold(header.PseudoSum(client4, server4, header.ProtoTCP, l4len)))
	tr.Translate(&Packet{Buf: buf, Start: Headroom, Len: len(pkt), Offload: header.Offload{GSOType: header.GSOTCPv4 | header.GSOECN, GSOSize: 1448, NeedsCsum: true}}, &batch)
	if o := batch.Pkts[0].Offload; o.GSOType != header.GSOTCPv6|header.GSOECN || o.GSOSize != 1448 || !o.NeedsCsum {
		t.Fatalf("offload %+v", o)
	}
	// And back: the super-packet returns to TCPv4 with DF (segments > 1260).
	res, r = run(t, tr, out, header.Offload{GSOType: header.GSOTCPv6, GSOSize: 1448, NeedsCsum: true})
	if r != OK || !header.IPv4(res[0]).DF() || header.IPv4(res[0]).TotalLen() != 20+l4len {
		t.Fatalf("back: %v", r)
	}
	if got := binary.BigEndian.Uint16(res[0][36:]); got != header.Fold(header.PseudoSum(client4, server4, header.ProtoTCP, l4len)) {
		t.Fatalf("partial checksum back %#x", got)
	}
}

// Hostile and malformed input is dropped with a reason, never a panic.
func TestMalformedCountedByReason(t *testing.T) {
	tr := newT(t)
	good4 := build(t, ip4(layers.IPProtocolUDP, client4, server4), &layers.UDP{SrcPort: 1, DstPort: 2}, payloadOf(10))
	good6 := build(t, ip6(layers.IPProtocolUDP, server6, client6), &layers.UDP{SrcPort: 1, DstPort: 2}, payloadOf(10))
	mut := func(b []byte, f func([]byte)) []byte { c := append([]byte(nil), b...); f(c); return c }
	cases := []struct {
		name string
		pkt  []byte
		want Reason
	}{
		{"empty", []byte{}, DropTruncated},
		{"version 5", mut(good4, func(b []byte) { b[0] = 0x55 }), DropBadHeader},
		{"ihl 4", mut(good4, func(b []byte) { b[0] = 0x44 }), DropBadHeader},
		{"short ipv4", good4[:19], DropTruncated},
		{"total length too big", mut(good4, func(b []byte) { header.IPv4(b).SetTotalLen(999); header.IPv4(b).SetChecksum() }), DropBadLength},
		{"header checksum", mut(good4, func(b []byte) { b[10] ^= 1 }), DropBadChecksum},
		{"udp cut", mut(good4[:24], func(b []byte) { header.IPv4(b).SetTotalLen(24); header.IPv4(b).SetChecksum() }), DropTruncated},
		{"loopback dst", mut(good4, func(b []byte) { b[16] = 127; header.IPv4(b).SetChecksum() }), DropUntranslatableDst},
		{"icmpv6 in ipv4", mut(good4, func(b []byte) { b[9] = 58; header.IPv4(b).SetChecksum() }), DropWrongICMPFamily},
		{"short ipv6", good6[:39], DropTruncated},
		{"ipv6 payload length 0, no jumbo option", mut(good6, func(b []byte) { b[4], b[5] = 0, 0 }), DropTruncated},
		{"ipv6 payload length", mut(good6, func(b []byte) { b[5] = 200 }), DropBadLength},
		{"ipv6 dst outside", mut(good6, func(b []byte) { b[24] = 0x20 }), DropUntranslatableDst},
		{"icmpv4 in ipv6", mut(good6, func(b []byte) { b[6] = 1 }), DropWrongICMPFamily},
		{"ext header loop", mut(good6, func(b []byte) { b[6] = 60; b[40] = 60; b[41] = 0 }), DropTruncated},
	}
	for _, c := range cases {
		before := tr.Stats.Drops[c.want].Load()
		if _, r := run(t, tr, c.pkt, header.Offload{}); r != c.want {
			t.Errorf("%s: %v, want %v", c.name, r, c.want)
		}
		if tr.Stats.Drops[c.want].Load() != before+1 {
			t.Errorf("%s: not counted", c.name)
		}
	}
}

func TestSetConfigSwitchesPool6(t *testing.T) {
	tr := newT(t)
	pkt := build(t, ip4(layers.IPProtocolUDP, client4, server4), &layers.UDP{SrcPort: 1, DstPort: 2}, payloadOf(10))
	c := tr.Config()
	c.Pool6, _ = ParsePrefix6052("fddd:1337:1338:aaaa:bbbb:cccc::/96")
	if err := tr.SetConfig(c); err != nil {
		t.Fatal(err)
	}
	out := one(t, tr, pkt)
	if !net.IP(header.IPv6(out).Dst()).Equal(net.ParseIP("fddd:1337:1338:aaaa:bbbb:cccc:c633:6401")) {
		t.Fatalf("dst %v", net.IP(header.IPv6(out).Dst()))
	}
}

// MSS clamping (the tunnel practice RFC 4459 section 3.2 describes): a SYN's
// MSS option above MaxMSS is lowered in both directions, checksum kept right.
func TestMSSClampBothDirections(t *testing.T) {
	c := testConfig(t)
	c.MaxMSS = 1440
	tr, _ := New(c)
	syn := &layers.TCP{SrcPort: 1, DstPort: 2, SYN: true, Options: []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}}}}
	out := one(t, tr, build(t, ip4(layers.IPProtocolTCP, client4, server4), syn, payloadOf(0)))
	if mss := binary.BigEndian.Uint16(out[40+22:]); mss != 1440 {
		t.Errorf("4to6 MSS %d, want 1440", mss)
	}
	syn6 := &layers.TCP{SrcPort: 2, DstPort: 1, SYN: true, ACK: true, Options: []layers.TCPOption{{OptionType: layers.TCPOptionKindNop}, {OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xa0}}}}
	out = one(t, tr, build(t, ip6(layers.IPProtocolTCP, server6, client6), syn6, payloadOf(0)))
	if mss := binary.BigEndian.Uint16(out[20+23:]); mss != 1440 {
		t.Errorf("6to4 MSS %d, want 1440 (odd offset)", mss)
	}
	small := &layers.TCP{SrcPort: 1, DstPort: 2, SYN: true, Options: []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x04, 0x00}}}}
	out = one(t, tr, build(t, ip4(layers.IPProtocolTCP, client4, server4), small, payloadOf(0)))
	if mss := binary.BigEndian.Uint16(out[40+22:]); mss != 1024 {
		t.Errorf("small MSS changed to %d", mss)
	}
}

// A PLAT's destination gate: denied IPv4 destinations get ICMPv6
// Destination Unreachable, administratively prohibited (RFC 4443 3.1 code 1).
func TestDeny4RefusesWithAdminProhibited(t *testing.T) {
	c := testConfig(t)
	c.Deny4 = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/25")}
	tr, _ := New(c)
	res, r := run(t, tr, build(t, ip6(layers.IPProtocolUDP, client6, server6), &layers.UDP{SrcPort: 1, DstPort: 2}, payloadOf(10)), header.Offload{})
	if r != DropRefusedDst || len(res) != 1 || res[0][40] != 1 || res[0][41] != 1 {
		t.Fatalf("%v %d", r, len(res))
	}
	checkPacket(t, res[0])
	if !net.IP(header.IPv6(res[0]).Dst()).Equal(client6) {
		t.Fatal("error not sent to the source")
	}
	// Outside the denied prefix: translated.
	other := net.ParseIP("fddd:1337:1338:1234:5678:9abc:c633:6481") // 198.51.100.129
	one(t, tr, build(t, ip6(layers.IPProtocolUDP, client6, other), &layers.UDP{SrcPort: 1, DstPort: 2}, payloadOf(10)))
}

// An Echo handed over with its checksum left to the kernel (NeedsCsum) is
// translated with a whole checksum (ICMPv4 has no pseudo-header to start
// from), so the flag must not travel on: the kernel would add the message
// sum a second time.
func TestEchoWithChecksumLeftToTheKernelLeavesWhole(t *testing.T) {
	tr := newT(t)
	for _, pkt := range [][]byte{icmp4Packet(t, 8, 0, 0), icmp6Packet(t, 128, 0, 0, 0)} {
		if pkt[0]>>4 == 4 {
			pkt[22], pkt[23] = 0, 0 // what a TUN hands over: no sum yet
		} else {
			h := header.IPv6(pkt)
			binary.BigEndian.PutUint16(pkt[42:], header.Fold(header.PseudoSum(h.Src(), h.Dst(), header.ProtoICMPv6, len(pkt)-40)))
		}
		var out Batch
		buf := make([]byte, Headroom+len(pkt))
		copy(buf[Headroom:], pkt)
		if r := tr.Translate(&Packet{Buf: buf, Start: Headroom, Len: len(pkt), Offload: header.Offload{NeedsCsum: true}}, &out); r != OK || out.N != 1 {
			t.Fatalf("%v %d", r, out.N)
		}
		if out.Pkts[0].Offload.NeedsCsum {
			t.Errorf("IPv%d echo: NeedsCsum still set on a whole checksum", pkt[0]>>4)
		}
		checkPacket(t, out.Pkts[0].Bytes())
	}
}

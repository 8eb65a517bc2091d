package siit

import (
	"encoding/binary"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/gluon-464xlat/gluon-464xlat/header"
)

// benchTranslate reports ns/packet and allocs/packet (b.ReportAllocs) for one
// direction; the packet is restored from a copy between runs, as a TUN read would.
func benchTranslate(b *testing.B, pkt []byte, o header.Offload) {
	tr := newT(b)
	buf := make([]byte, Headroom+len(pkt))
	var out Batch
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		copy(buf[Headroom:], pkt)
		if r := tr.Translate(&Packet{Buf: buf, Start: Headroom, Len: len(pkt), Offload: o}, &out); r != OK {
			b.Fatal(r)
		}
	}
}

func BenchmarkTranslate4to6TCP(b *testing.B) {
	benchTranslate(b, build(b, ip4(layers.IPProtocolTCP, client4, server4), &layers.TCP{SrcPort: 1, DstPort: 2, ACK: true}, payloadOf(1400)), header.Offload{})
}

func BenchmarkTranslate6to4TCP(b *testing.B) {
	benchTranslate(b, build(b, ip6(layers.IPProtocolTCP, server6, client6), &layers.TCP{SrcPort: 1, DstPort: 2, ACK: true}, payloadOf(1400)), header.Offload{})
}

func BenchmarkTranslate4to6UDPSmall(b *testing.B) {
	benchTranslate(b, build(b, ip4(layers.IPProtocolUDP, client4, server4), &layers.UDP{SrcPort: 1, DstPort: 2}, payloadOf(64)), header.Offload{})
}

func BenchmarkTranslate6to4UDPSmall(b *testing.B) {
	benchTranslate(b, build(b, ip6(layers.IPProtocolUDP, server6, client6), &layers.UDP{SrcPort: 1, DstPort: 2}, payloadOf(64)), header.Offload{})
}

func BenchmarkTranslate4to6GSO64K(b *testing.B) {
	pkt := build(b, ip4(layers.IPProtocolTCP, client4, server4), &layers.TCP{SrcPort: 1, DstPort: 2, ACK: true}, payloadOf(64000))
	binary.BigEndian.PutUint16(pkt[36:], header.Fold(header.PseudoSum(client4, server4, 6, len(pkt)-20)))
	benchTranslate(b, pkt, header.Offload{GSOType: header.GSOTCPv4, GSOSize: 1448, NeedsCsum: true})
}

func BenchmarkTranslate4to6ICMPError(b *testing.B) {
	benchTranslate(b, icmp4Packet(b, 3, 3, 0), header.Offload{})
}

// TestTranslateAllocatesNothing pins the hot path at zero allocations.
func TestTranslateAllocatesNothing(t *testing.T) {
	tr := newT(t)
	for _, pkt := range [][]byte{
		build(t, ip4(layers.IPProtocolTCP, client4, server4), &layers.TCP{SrcPort: 1, DstPort: 2, ACK: true}, payloadOf(1400)),
		build(t, ip6(layers.IPProtocolUDP, server6, client6), &layers.UDP{SrcPort: 1, DstPort: 2}, payloadOf(64)),
		icmp4Packet(t, 3, 3, 0), icmp6Packet(t, 1, 4, 0, 300),
		fragNoDF(t), // fragmented to the lowest IPv6 MTU
	} {
		buf := make([]byte, Headroom+len(pkt))
		var out Batch
		n := testing.AllocsPerRun(100, func() {
			copy(buf[Headroom:], pkt)
			tr.Translate(&Packet{Buf: buf, Start: Headroom, Len: len(pkt)}, &out)
		})
		if n != 0 {
			t.Errorf("%d allocs per packet, want 0", int(n))
		}
	}
}

// fragNoDF is a 1500-byte IPv4 UDP packet without DF.
func fragNoDF(t testing.TB) []byte {
	l3 := ip4(layers.IPProtocolUDP, client4, server4)
	l3.Flags = 0
	return build(t, l3, &layers.UDP{SrcPort: 1, DstPort: 2}, payloadOf(1472))
}

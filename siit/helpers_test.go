package siit

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gluon-464xlat/gluon-464xlat/header"
)

// The test address plan is the CLAT of DESIGN.md section 2: clients in
// 10.130.0.0/16 map onto the CLAT /96 by EAM, the rest of IPv4 onto the PLAT /96.
var (
	plat96   = "fddd:1337:1338:1234:5678:9abc::/96"
	client4  = net.IPv4(10, 130, 0, 10).To4()
	server4  = net.IPv4(198, 51, 100, 1).To4()
	client6  = net.ParseIP("fddd:1337:1337:1234:5678:9abc:a82:a")
	server6  = net.ParseIP("fddd:1337:1338:1234:5678:9abc:c633:6401")
	router6  = net.ParseIP("2001:db8::1") // has no IPv4 mapping
	addr6own = netip.MustParseAddr("fddd:1337:1337:1234:5678:9abc:c000:2")
)

func testConfig(t testing.TB) Config {
	t.Helper()
	pool, err := ParsePrefix6052(plat96)
	if err != nil {
		t.Fatal(err)
	}
	eam, err := NewEAM(netip.MustParsePrefix("10.130.0.0/16"), netip.MustParsePrefix("fddd:1337:1337:1234:5678:9abc:a82:0/112"))
	if err != nil {
		t.Fatal(err)
	}
	return Config{Pool6: pool, EAMs: []EAM{eam}, Addr6: addr6own}
}

func newT(t testing.TB) *Translator {
	t.Helper()
	tr, err := New(testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// build serializes layers with lengths and checksums computed by gopacket,
// an implementation independent of the translator's.
func build(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	for _, l := range ls {
		switch x := l.(type) {
		case *layers.TCP:
			for _, n := range ls {
				if nl, ok := n.(gopacket.NetworkLayer); ok {
					x.SetNetworkLayerForChecksum(nl)
				}
			}
		case *layers.UDP:
			for _, n := range ls {
				if nl, ok := n.(gopacket.NetworkLayer); ok {
					x.SetNetworkLayerForChecksum(nl)
				}
			}
		case *layers.ICMPv6:
			for _, n := range ls {
				if nl, ok := n.(gopacket.NetworkLayer); ok {
					x.SetNetworkLayerForChecksum(nl)
				}
			}
		}
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func ip4(proto layers.IPProtocol, src, dst net.IP) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, TOS: 0x28, Id: 0x1234, Flags: layers.IPv4DontFragment, Protocol: proto, SrcIP: src, DstIP: dst}
}

func ip6(next layers.IPProtocol, src, dst net.IP) *layers.IPv6 {
	return &layers.IPv6{Version: 6, TrafficClass: 0x28, HopLimit: 64, NextHeader: next, SrcIP: src, DstIP: dst}
}

// run translates pkt with tr and returns the outputs (copied) and reason.
func run(t testing.TB, tr *Translator, pkt []byte, o header.Offload) ([][]byte, Reason) {
	t.Helper()
	buf := make([]byte, Headroom+len(pkt)+64)
	copy(buf[Headroom:], pkt)
	var out Batch
	r := tr.Translate(&Packet{Buf: buf, Start: Headroom, Len: len(pkt), Offload: o}, &out)
	var res [][]byte
	for i := 0; i < out.N; i++ {
		res = append(res, append([]byte(nil), out.Pkts[i].Bytes()...))
	}
	return res, r
}

// one translates and expects exactly one output with reason OK.
func one(t testing.TB, tr *Translator, pkt []byte) []byte {
	t.Helper()
	res, r := run(t, tr, pkt, header.Offload{})
	if r != OK || len(res) != 1 {
		t.Fatalf("translate: reason %v, %d outputs; want ok, 1", r, len(res))
	}
	checkPacket(t, res[0])
	return res[0]
}

func decode(b []byte) gopacket.Packet {
	first := layers.LayerTypeIPv4
	if b[0]>>4 == 6 {
		first = layers.LayerTypeIPv6
	}
	return gopacket.NewPacket(b, first, gopacket.Default)
}

// checkPacket asserts what every emitted packet must satisfy: lengths that
// agree with the buffer, a correct IPv4 header checksum, and a correct
// transport checksum whenever the whole transport message is present.
func checkPacket(t testing.TB, b []byte) {
	t.Helper()
	if msg := packetProblem(b); msg != "" {
		t.Fatalf("emitted packet invalid: %s\n% x", msg, b)
	}
}

func packetProblem(b []byte) string {
	if len(b) < 1 {
		return "empty"
	}
	var src, dst []byte
	var proto uint8
	var l4 []byte
	switch b[0] >> 4 {
	case 4:
		if len(b) < 20 {
			return "short IPv4"
		}
		h := header.IPv4(b)
		if h.TotalLen() != len(b) {
			return "IPv4 total length != packet length"
		}
		if header.Checksum(b[:h.IHL()], 0) != 0 {
			return "IPv4 header checksum"
		}
		if h.IsFragment() {
			return ""
		}
		src, dst, proto, l4 = h.Src(), h.Dst(), h.Protocol(), b[h.IHL():]
	case 6:
		if len(b) < 40 {
			return "short IPv6"
		}
		h := header.IPv6(b)
		if h.PayloadLen()+40 != len(b) {
			return "IPv6 payload length != packet length"
		}
		e, r := walkExt6(b, false)
		if r != OK {
			return "IPv6 extension headers: " + r.String()
		}
		if e.frag {
			return ""
		}
		src, dst, proto, l4 = h.Src(), h.Dst(), e.proto, b[e.l4:]
	default:
		return "bad version"
	}
	var pseudo uint64
	switch proto {
	case header.ProtoTCP:
		pseudo = header.PseudoSum(src, dst, proto, len(l4))
	case header.ProtoUDP:
		if len(l4) >= 8 && binary.BigEndian.Uint16(l4[6:]) == 0 {
			if len(src) == 16 {
				return "zero UDP checksum in IPv6"
			}
			return ""
		}
		pseudo = header.PseudoSum(src, dst, proto, len(l4))
	case header.ProtoICMPv6:
		pseudo = header.PseudoSum(src, dst, proto, len(l4))
	case header.ProtoICMP:
	default:
		return ""
	}
	if header.Checksum(l4, pseudo) != 0 {
		return "transport checksum"
	}
	return ""
}

func payloadOf(n int) *gopacket.Payload {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	p := gopacket.Payload(b)
	return &p
}

// fragment4 cuts an IPv4 packet (20-byte header) into fragments of size
// payload bytes (a multiple of 8), as an IPv4 router would.
func fragment4(pkt []byte, size int) [][]byte {
	data := pkt[20:]
	var res [][]byte
	for off := 0; off < len(data); off += size {
		n := min(size, len(data)-off)
		f := append(append([]byte(nil), pkt[:20]...), data[off:off+n]...)
		h := header.IPv4(f)
		h.SetTotalLen(len(f))
		h.SetFlagsOffset(false, off+n < len(data), off)
		h.SetChecksum()
		res = append(res, f)
	}
	return res
}

// fixICMP4 recomputes the ICMPv4 checksum of a 20-byte-header packet.
func fixICMP4(pkt []byte) {
	binary.BigEndian.PutUint16(pkt[22:], 0)
	binary.BigEndian.PutUint16(pkt[22:], header.Checksum(pkt[20:], 0))
}

// icmp4Packet is an ICMPv4 message from the client to the server: a query
// for echo types, else an error quoting a 100-byte UDP packet that the
// server sent to the client. p goes to byte 4 (the Parameter Problem pointer).
func icmp4Packet(t testing.TB, typ, code, p uint8) []byte {
	return icmp4PacketInner(t, typ, code, p, 100)
}

func icmp4PacketInner(t testing.TB, typ, code, p uint8, innerLen int) []byte {
	t.Helper()
	var body []byte
	if typ == 8 || typ == 0 || typ == 13 || typ == 15 || typ == 17 || typ == 9 || typ == 10 {
		body = []byte{0, 1, 0, 2, 'p', 'i', 'n', 'g'}
	} else {
		in := ip4(layers.IPProtocolUDP, server4, client4)
		body = build(t, in, &layers.UDP{SrcPort: 53, DstPort: 1000}, payloadOf(innerLen-28))
		body = body[:min(len(body), 548)]
		body = append([]byte{p, 0, 0, 0}, body...)
	}
	msg := append([]byte{typ, code, 0, 0}, body...)
	binary.BigEndian.PutUint16(msg[2:], header.Checksum(msg, 0))
	l3 := ip4(layers.IPProtocolICMPv4, client4, server4)
	l3.Flags = 0
	return build(t, l3, gopacket.Payload(msg))
}

package siit

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gluon-464xlat/gluon-464xlat/header"
)

// RFC 7915 section 4.1: every IPv6 header field from the IPv4 one.
func TestRFC7915Section4_1HeaderFields(t *testing.T) {
	tr := newT(t)
	pkt := build(t, ip4(layers.IPProtocolUDP, client4, server4), &layers.UDP{SrcPort: 1000, DstPort: 53}, payloadOf(100))
	out := one(t, tr, pkt)
	h := header.IPv6(out)
	if h.Version() != 6 || h.TrafficClass() != 0x28 || h.FlowLabel() != 0 {
		t.Errorf("version/TC/flow = %d/%#x/%d, want 6/0x28/0", h.Version(), h.TrafficClass(), h.FlowLabel())
	}
	if h.HopLimit() != 63 {
		t.Errorf("hop limit %d, want TTL-1 = 63", h.HopLimit())
	}
	if h.NextHeader() != header.ProtoUDP || h.PayloadLen() != 8+100 {
		t.Errorf("next header %d len %d", h.NextHeader(), h.PayloadLen())
	}
	if !net.IP(h.Src()).Equal(client6) || !net.IP(h.Dst()).Equal(server6) {
		t.Errorf("addresses %v -> %v", net.IP(h.Src()), net.IP(h.Dst()))
	}
	if !bytes.Equal(out[48:], pkt[28:]) {
		t.Error("payload changed")
	}
}

// RFC 7915 section 4.1 "Options": IPv4 options are dropped, the rest translated.
func TestRFC7915Section4_1OptionsIgnored(t *testing.T) {
	tr := newT(t)
	l3 := ip4(layers.IPProtocolUDP, client4, server4)
	l3.Options = []layers.IPv4Option{{OptionType: 7, OptionLength: 7, OptionData: []byte{4, 0, 0, 0, 0}}} // record route
	pkt := build(t, l3, &layers.UDP{SrcPort: 1, DstPort: 2}, payloadOf(10))
	out := one(t, tr, pkt)
	if header.IPv6(out).PayloadLen() != 18 || header.IPv6(out).NextHeader() != header.ProtoUDP {
		t.Fatalf("options not dropped cleanly: % x", out)
	}
}

// RFC 7915 section 4.1 "Options": an unexpired source route is refused with
// ICMPv4 Destination Unreachable, Source Route Failed (3/5).
func TestRFC7915Section4_1SourceRouteRefused(t *testing.T) {
	tr := newT(t)
	l3 := ip4(layers.IPProtocolUDP, client4, server4)
	l3.Options = []layers.IPv4Option{{OptionType: 131, OptionLength: 7, OptionData: []byte{4, 1, 2, 3, 4}}, {OptionType: 0}}
	pkt := build(t, l3, &layers.UDP{SrcPort: 1, DstPort: 2}, payloadOf(10))
	res, r := run(t, tr, pkt, header.Offload{})
	if r != DropSourceRoute || len(res) != 1 {
		t.Fatalf("reason %v outputs %d", r, len(res))
	}
	checkPacket(t, res[0])
	if res[0][20] != 3 || res[0][21] != 5 || !net.IP(header.IPv4(res[0]).Dst()).Equal(client4) {
		t.Fatalf("want ICMPv4 3/5 to the client, got % x", res[0][:28])
	}
	if tr.Stats.Drops[DropSourceRoute].Load() != 1 {
		t.Error("not counted")
	}
}

// RFC 7915 section 4.1 "Hop Limit": the translator is a router; TTL 1 runs
// out here and an ICMPv4 Time Exceeded goes back to the sender.
func TestRFC7915Section4_1TTLExpiry(t *testing.T) {
	tr := newT(t)
	l3 := ip4(layers.IPProtocolUDP, client4, server4)
	l3.TTL = 1
	pkt := build(t, l3, &layers.UDP{SrcPort: 33434, DstPort: 33435}, payloadOf(20))
	res, r := run(t, tr, pkt, header.Offload{})
	if r != DropTTLExpired || len(res) != 1 {
		t.Fatalf("reason %v outputs %d", r, len(res))
	}
	checkPacket(t, res[0])
	e := header.IPv4(res[0])
	if res[0][20] != 11 || res[0][21] != 0 || !net.IP(e.Dst()).Equal(client4) || !net.IP(e.Src()).Equal(net.IPv4(192, 0, 0, 2)) {
		t.Fatalf("want Time Exceeded from 192.0.0.2 to client: % x", res[0][:28])
	}
	if !bytes.Equal(res[0][28:], pkt) {
		t.Error("quoted packet differs")
	}
}

// RFC 7915 section 4.1 "Fragment Header": an IPv4 fragment gets a Fragment
// header with the Identification, offset and M flag of the IPv4 header.
func TestRFC7915Section4_1FragmentHeader(t *testing.T) {
	tr := newT(t)
	full := build(t, ip4(layers.IPProtocolUDP, client4, server4), &layers.UDP{SrcPort: 7, DstPort: 9}, payloadOf(392))
	frags := fragment4(full, 200) // 8+392 bytes: two fragments
	var got []byte
	for i, f := range frags {
		out := one(t, tr, f)
		h := header.IPv6(out)
		if h.NextHeader() != header.ProtoIPv6Frag {
			t.Fatalf("fragment %d: no Fragment header", i)
		}
		fh := header.IPv6Frag(out[40:])
		if fh.ID() != 0x1234 || fh.NextHeader() != header.ProtoUDP || fh.Offset() != i*200 || fh.More() != (i == 0) {
			t.Errorf("fragment %d: id %#x next %d off %d more %v", i, fh.ID(), fh.NextHeader(), fh.Offset(), fh.More())
		}
		got = append(got, out[48:]...)
	}
	// Reassembled, the UDP checksum must hold for the IPv6 pseudo-header.
	if header.Checksum(got, header.PseudoSum(client6.To16(), server6.To16(), header.ProtoUDP, len(got))) != 0 {
		t.Error("reassembled UDP checksum wrong")
	}
}

// RFC 7915 section 4: without DF, a packet larger than the lowest IPv6 MTU
// is fragmented to fit 1280 bytes, Identification copied.
func TestRFC7915Section4FragmentToLowestMTU(t *testing.T) {
	tr := newT(t)
	l3 := ip4(layers.IPProtocolUDP, client4, server4)
	l3.Flags = 0
	pkt := build(t, l3, &layers.UDP{SrcPort: 7, DstPort: 9}, payloadOf(3000))
	res, r := run(t, tr, pkt, header.Offload{})
	if r != OK || len(res) != 3 {
		t.Fatalf("reason %v, %d fragments, want 3", r, len(res))
	}
	var data []byte
	for i, f := range res {
		checkPacket(t, f)
		if len(f) > 1280 {
			t.Errorf("fragment %d is %d bytes", i, len(f))
		}
		fh := header.IPv6Frag(f[40:])
		if fh.ID() != 0x1234 || fh.Offset() != len(data) || fh.More() != (i < 2) {
			t.Errorf("fragment %d header %v %d %v", i, fh.ID(), fh.Offset(), fh.More())
		}
		data = append(data, f[48:]...)
	}
	if len(data) != 3008 {
		t.Fatalf("fragments carry %d bytes", len(data))
	}
	// With DF and no fragmentation needed, no Fragment header (RFC 7915 dropped atomic fragments).
	small := build(t, ip4(layers.IPProtocolUDP, client4, server4), &layers.UDP{SrcPort: 7, DstPort: 9}, payloadOf(3000))
	if out := one(t, tr, small); header.IPv6(out).NextHeader() != header.ProtoUDP {
		t.Error("DF packet got a Fragment header")
	}
}

// RFC 7915 section 4.5: TCP and UDP checksums are correct for the IPv6
// pseudo-header; a zero IPv4 UDP checksum is computed, or dropped if fragmented.
func TestRFC7915Section4_5TransportChecksums(t *testing.T) {
	tr := newT(t)
	tcp := build(t, ip4(layers.IPProtocolTCP, client4, server4), &layers.TCP{SrcPort: 40000, DstPort: 80, Seq: 1, ACK: true, Window: 100}, payloadOf(333))
	one(t, tr, tcp) // checkPacket verifies the checksum
	udp := build(t, ip4(layers.IPProtocolUDP, client4, server4), &layers.UDP{SrcPort: 5, DstPort: 6}, payloadOf(77))
	binary.BigEndian.PutUint16(udp[26:], 0)
	out := one(t, tr, udp)
	if binary.BigEndian.Uint16(out[46:]) == 0 {
		t.Error("zero UDP checksum not computed")
	}
	frag := fragment4(udp, 48)[0]
	if _, r := run(t, tr, frag, header.Offload{}); r != DropUDPZeroChecksum {
		t.Errorf("fragmented zero-checksum UDP: %v", r)
	}
	c := testConfig(t)
	c.DropZeroUDPChecksum = true
	tr2, _ := New(c)
	if _, r := run(t, tr2, udp, header.Offload{}); r != DropUDPZeroChecksum {
		t.Errorf("policy drop: %v", r)
	}
}

// RFC 7915 section 4.2: ICMPv4 query and error types and codes.
func TestRFC7915Section4_2ICMPMapping(t *testing.T) {
	cases := []struct {
		typ, code   uint8
		drop        bool
		wantT, want uint8
	}{
		{8, 0, false, 128, 0}, {0, 0, false, 129, 0},
		{3, 0, false, 1, 0}, {3, 1, false, 1, 0}, {3, 2, false, 4, 1}, {3, 3, false, 1, 4},
		{3, 4, false, 2, 0}, {3, 5, false, 1, 0}, {3, 6, false, 1, 0}, {3, 7, false, 1, 0},
		{3, 8, false, 1, 0}, {3, 9, false, 1, 1}, {3, 10, false, 1, 1}, {3, 11, false, 1, 0},
		{3, 12, false, 1, 0}, {3, 13, false, 1, 1}, {3, 14, true, 0, 0}, {3, 15, false, 1, 1},
		{11, 0, false, 3, 0}, {11, 1, false, 3, 1}, {12, 0, false, 4, 0}, {12, 1, true, 0, 0},
		{12, 2, false, 4, 0}, {13, 0, true, 0, 0}, {15, 0, true, 0, 0}, {17, 0, true, 0, 0},
		{9, 0, true, 0, 0}, {10, 0, true, 0, 0}, {5, 0, true, 0, 0}, {4, 0, true, 0, 0}, {42, 0, true, 0, 0},
	}
	for _, c := range cases {
		tr := newT(t)
		pkt := icmp4Packet(t, c.typ, c.code, 9)
		res, r := run(t, tr, pkt, header.Offload{})
		if c.drop {
			if r != DropICMPType || len(res) != 0 {
				t.Errorf("ICMPv4 %d/%d: %v, want dropped", c.typ, c.code, r)
			}
			continue
		}
		if r != OK || len(res) != 1 {
			t.Errorf("ICMPv4 %d/%d: %v", c.typ, c.code, r)
			continue
		}
		checkPacket(t, res[0])
		if res[0][40] != c.wantT || res[0][41] != c.want {
			t.Errorf("ICMPv4 %d/%d -> %d/%d, want %d/%d", c.typ, c.code, res[0][40], res[0][41], c.wantT, c.want)
		}
	}
}

// RFC 7915 section 4.2, figure 3: Parameter Problem pointers.
func TestRFC7915Section4_2ParameterProblemPointer(t *testing.T) {
	want := map[uint8]int{0: 0, 1: 1, 2: 4, 3: 4, 4: -1, 5: -1, 6: -1, 7: -1, 8: 7, 9: 6, 10: -1, 11: -1, 12: 8, 15: 8, 16: 24, 19: 24, 20: -1}
	for p, w := range want {
		tr := newT(t)
		res, r := run(t, tr, icmp4Packet(t, 12, 0, p), header.Offload{})
		if w < 0 {
			if r != DropICMPType {
				t.Errorf("pointer %d: %v, want dropped", p, r)
			}
			continue
		}
		if r != OK || binary.BigEndian.Uint32(res[0][44:]) != uint32(w) {
			t.Errorf("pointer %d -> %v %v, want %d", p, r, res, w)
		}
	}
}

// RFC 7915 section 4.2: Fragmentation Needed becomes Packet Too Big with the
// MTU adjusted by 20, a RFC 1191 plateau when the router sent 0, floor 1280.
func TestRFC7915Section4_2PacketTooBigMTU(t *testing.T) {
	for _, c := range []struct{ mtu, want uint32 }{{1400, 1420}, {1480, 1500}, {576, 1280}, {0, 1280}, {1500, 1520}} {
		tr := newT(t)
		pkt := icmp4Packet(t, 3, 4, 0)
		binary.BigEndian.PutUint16(pkt[26:], uint16(c.mtu))
		fixICMP4(pkt)
		out := one(t, tr, pkt)
		if got := binary.BigEndian.Uint32(out[44:]); got != c.want {
			t.Errorf("MTU %d -> %d, want %d", c.mtu, got, c.want)
		}
	}
	// Plateau: inner total length 1500 and MTU 0 -> 1492 + 20.
	tr := newT(t)
	pkt := icmp4PacketInner(t, 3, 4, 0, 1500)
	out := one(t, tr, pkt)
	if got := binary.BigEndian.Uint32(out[44:]); got != 1512 {
		t.Errorf("plateau MTU = %d, want 1512", got)
	}
}

// RFC 7915 section 4.3: the packet inside an ICMPv4 error is translated:
// addresses, protocol, length, its transport checksum; the outer message
// stays within 1280 bytes (RFC 4443 section 2.4 (c)).
func TestRFC7915Section4_3InnerPacket(t *testing.T) {
	tr := newT(t)
	pkt := icmp4PacketInner(t, 3, 3, 0, 1400) // port unreachable quoting a big UDP packet
	out := one(t, tr, pkt)
	if len(out) > 1280 {
		t.Fatalf("ICMPv6 error is %d bytes", len(out))
	}
	inner := out[48:]
	ih := header.IPv6(inner)
	if !net.IP(ih.Src()).Equal(server6) || !net.IP(ih.Dst()).Equal(client6) || ih.NextHeader() != header.ProtoUDP {
		t.Fatalf("inner %v -> %v proto %d", net.IP(ih.Src()), net.IP(ih.Dst()), ih.NextHeader())
	}
	if ih.PayloadLen() != 1400-20 {
		t.Errorf("inner payload length %d, want 1380", ih.PayloadLen())
	}
	// The inner UDP checksum was moved to the IPv6 pseudo-header: recompute
	// it over the original (untruncated) datagram to compare.
	full := build(t, ip4(layers.IPProtocolUDP, server4, client4), &layers.UDP{SrcPort: 53, DstPort: 1000}, payloadOf(1400-28))
	udp := full[20:]
	binary.BigEndian.PutUint16(udp[6:], 0)
	exp := header.Checksum(udp, header.PseudoSum(server6.To16(), client6.To16(), header.ProtoUDP, len(udp)))
	if got := binary.BigEndian.Uint16(inner[46:]); got != exp {
		t.Errorf("inner UDP checksum %#x, want %#x", got, exp)
	}
}

// RFC 4884 section 4.5 via RFC 7915 section 4.2: extensions survive, the
// length field is re-expressed in 64-bit words.
func TestRFC4884ExtensionsFrom4To6(t *testing.T) {
	tr := newT(t)
	pkt := icmp4PacketInner(t, 11, 0, 0, 200)
	ext := []byte{0x20, 0, 0, 0, 0, 8, 1, 1, 1, 2, 3, 4} // version 2 header + one object
	binary.BigEndian.PutUint16(ext[2:], header.Checksum(ext, 0))
	// Original datagram 128 bytes (32 words), then the extension.
	msg := append(append([]byte(nil), pkt[20:28]...), pkt[28:28+128]...)
	msg[5] = 32
	msg = append(msg, ext...)
	pkt = append(pkt[:20:20], msg...)
	header.IPv4(pkt).SetTotalLen(len(pkt))
	header.IPv4(pkt).SetChecksum()
	fixICMP4(pkt)
	out := one(t, tr, pkt)
	l := int(out[44]) * 8
	if l != 152 { // 128 + 20 bytes more IPv6 header, padded to 64 bits
		t.Fatalf("ICMPv6 length field %d bytes, want 152", l)
	}
	if !bytes.Equal(out[48+148:48+152], []byte{0, 0, 0, 0}) {
		t.Error("padding not zero")
	}
	if !bytes.Equal(out[48+l:], ext) {
		t.Fatalf("extension not carried: % x", out[48+l:])
	}
}

// RFC 7915 section 1.3 / 4.2: fragmented ICMP is not translated.
func TestRFC7915Section4_2FragmentedICMPDropped(t *testing.T) {
	tr := newT(t)
	pkt := icmp4Packet(t, 8, 0, 0)
	big := append(pkt, *payloadOf(64)...)
	header.IPv4(big).SetTotalLen(len(big))
	frag := fragment4(big, 16)[0]
	if _, r := run(t, tr, frag, header.Offload{}); r != DropFragmentedICMP {
		t.Fatalf("%v", r)
	}
}

// RFC 7915 section 4 (and 4.1 "Fragment Header"): a DF packet too big for
// the IPv6 next hop is refused with Fragmentation Needed, MTU = MTU6 - 20.
func TestRFC7915Section4DFTooBigForIPv6NextHop(t *testing.T) {
	c := testConfig(t)
	c.MTU6 = 1400
	tr, _ := New(c)
	pkt := build(t, ip4(layers.IPProtocolUDP, client4, server4), &layers.UDP{SrcPort: 1, DstPort: 2}, payloadOf(1400-28))
	res, r := run(t, tr, pkt, header.Offload{})
	if r != DropTooBig || len(res) != 1 {
		t.Fatalf("%v %d", r, len(res))
	}
	checkPacket(t, res[0])
	if res[0][20] != 3 || res[0][21] != 4 || binary.BigEndian.Uint16(res[0][26:]) != 1380 {
		t.Fatalf("want Fragmentation Needed MTU 1380, got % x", res[0][20:28])
	}
	// One byte less fits: 1380 bytes of IPv4 are 1400 of IPv6.
	one(t, tr, build(t, ip4(layers.IPProtocolUDP, client4, server4), &layers.UDP{SrcPort: 1, DstPort: 2}, payloadOf(1380-28)))
}

// RFC 1812 section 4.3.2.7: no ICMP error about an IPv4 multicast or
// limited-broadcast packet, not even Time Exceeded for TTL 1 (section 1.2
// of RFC 7915 leaves multicast untranslated): dropped, counted apart.
func TestRFC1812Section4_3_2_7NoTimeExceededForMulticast(t *testing.T) {
	for _, dst := range []net.IP{net.IPv4(224, 0, 0, 251), net.IPv4(239, 1, 2, 3), net.IPv4(255, 255, 255, 255)} {
		tr := newT(t)
		l3 := ip4(layers.IPProtocolUDP, client4, dst.To4())
		l3.TTL = 1
		res, r := run(t, tr, build(t, l3, &layers.UDP{SrcPort: 5353, DstPort: 5353}, payloadOf(20)), header.Offload{})
		if r != DropMulticast || len(res) != 0 {
			t.Errorf("%s TTL 1: reason %v, %d packets out; want %v and none", dst, r, len(res), DropMulticast)
		}
	}
}

// RFC 7915 section 4.3: an ICMPv4 error whose quoted packet is itself an
// ICMPv4 error is dropped, not translated (its inner ICMP header would
// cross untranslated); one quoting an Echo is translated.
func TestRFC7915Section4_3ErrorAboutAnErrorDropped(t *testing.T) {
	quoting := func(innerType uint8) []byte {
		inner := build(t, ip4(layers.IPProtocolICMPv4, server4, client4),
			&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(innerType, 0)}, payloadOf(28))
		msg := append([]byte{3, 1, 0, 0, 0, 0, 0, 0}, inner...)
		binary.BigEndian.PutUint16(msg[2:], header.Checksum(msg, 0))
		return build(t, ip4(layers.IPProtocolICMPv4, client4, server4), gopacket.Payload(msg))
	}
	tr := newT(t)
	if res, r := run(t, tr, quoting(11), header.Offload{}); r != DropBadInner || len(res) != 0 {
		t.Errorf("error quoting Time Exceeded: reason %v, %d packets out", r, len(res))
	}
	if res, r := run(t, tr, quoting(8), header.Offload{}); r != OK || len(res) != 1 {
		t.Errorf("error quoting an Echo Request: reason %v, %d packets out", r, len(res))
	}
}

// RFC 7915 section 4.1 "Source Address": a packet from an illegal IPv4
// source (0.0.0.0, 127.0.0.1) is dropped, but an ICMPv4 error from one is
// translated (its source embedded in the RFC 6052 prefix) for troubleshooting.
func TestRFC7915Section4_1IllegalSourceOfICMPError(t *testing.T) {
	for _, src := range []net.IP{net.IPv4(0, 0, 0, 0), net.IPv4(127, 0, 0, 1)} {
		tr := newT(t)
		inner := build(t, ip4(layers.IPProtocolUDP, server4, client4), &layers.UDP{SrcPort: 53, DstPort: 1000}, payloadOf(20))
		msg := append([]byte{3, 3, 0, 0, 0, 0, 0, 0}, inner...)
		binary.BigEndian.PutUint16(msg[2:], header.Checksum(msg, 0))
		out := one(t, tr, build(t, ip4(layers.IPProtocolICMPv4, src.To4(), server4), gopacket.Payload(msg)))
		checkPacket(t, out)
		want := netip.MustParseAddr("fddd:1337:1338:1234:5678:9abc::").As16()
		copy(want[12:], src.To4())
		if got := header.IPv6(out).Src(); !bytes.Equal(got, want[:]) || out[40] != 1 || out[41] != 4 {
			t.Errorf("error from %s: source %v, type %d code %d", src, net.IP(got), out[40], out[41])
		}
		udp := build(t, ip4(layers.IPProtocolUDP, src.To4(), server4), &layers.UDP{SrcPort: 1, DstPort: 2}, payloadOf(10))
		if res, r := run(t, tr, udp, header.Offload{}); r != DropUntranslatableSrc || len(res) != 0 {
			t.Errorf("UDP from %s: %v, %d packets out", src, r, len(res))
		}
	}
}

// RFC 792 and RFC 1812 section 4.3.2.3: the Fragmentation Needed quotes the
// datagram as it arrived; the translator must not have rewritten its UDP
// checksum (to the IPv6 pseudo-header) or a TCP SYN's MSS before the size
// check.
func TestRFC1812Section4_3_2_3FragNeededQuotesTheDatagramAsItArrived(t *testing.T) {
	c := testConfig(t)
	c.MTU6, c.MaxMSS = 1400, 1200
	tr, _ := New(c)
	udp := build(t, ip4(layers.IPProtocolUDP, client4, server4), &layers.UDP{SrcPort: 1, DstPort: 2}, payloadOf(1400-28))
	tcp := build(t, ip4(layers.IPProtocolTCP, client4, server4), &layers.TCP{SrcPort: 1, DstPort: 2, SYN: true, Window: 100,
		Options: []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}}}}, payloadOf(1400-44))
	for name, pkt := range map[string][]byte{"UDP": udp, "TCP SYN": tcp} {
		orig := append([]byte(nil), pkt...)
		res, r := run(t, tr, pkt, header.Offload{})
		if r != DropTooBig || len(res) != 1 {
			t.Fatalf("%s: %v %d", name, r, len(res))
		}
		if quote := res[0][28:]; !bytes.Equal(quote, orig[:len(quote)]) {
			t.Errorf("%s: the quote differs from the datagram that arrived", name)
		}
	}
}

// RFC 7915 sections 4 and 4.1: without DF, the IPv6 packets leave no bigger
// than the smaller of the lowest IPv6 MTU and the IPv6 next hop's MTU; an
// IPv4 fragment with DF set that is too big for the IPv6 next hop gets
// Fragmentation Needed (MTU6 - 28: IPv6 and Fragment header), not fragments.
func TestRFC7915Section4FragmentToTheSmallerMTUAndDFFragments(t *testing.T) {
	c := testConfig(t)
	c.LowestIPv6MTU, c.MTU6 = 1500, 1400
	tr, _ := New(c)
	l3 := ip4(layers.IPProtocolUDP, client4, server4)
	l3.Flags = 0
	res, r := run(t, tr, build(t, l3, &layers.UDP{SrcPort: 1, DstPort: 2}, payloadOf(1450)), header.Offload{})
	if r != OK || len(res) < 2 {
		t.Fatalf("no DF, 1478 bytes: %v, %d packets", r, len(res))
	}
	for i, f := range res {
		if len(f) > 1400 {
			t.Errorf("fragment %d is %d bytes, over the IPv6 next hop's 1400", i, len(f))
		}
	}
	frag := ip4(layers.IPProtocolUDP, client4, server4)
	frag.Flags = layers.IPv4DontFragment | layers.IPv4MoreFragments
	pkt := build(t, frag, &layers.UDP{SrcPort: 1, DstPort: 2}, payloadOf(1400))
	res, r = run(t, tr, pkt, header.Offload{})
	if r != DropTooBig || len(res) != 1 || res[0][20] != 3 || res[0][21] != 4 || binary.BigEndian.Uint16(res[0][26:]) != 1372 {
		t.Fatalf("DF fragment too big: %v, %d packets, want Fragmentation Needed MTU 1372", r, len(res))
	}
}

package siit

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gluon-464xlat/gluon-464xlat/header"
)

// RFC 7915 section 5.1: every IPv4 header field from the IPv6 one, DF set
// only above 1260 bytes.
func TestRFC7915Section5_1HeaderFields(t *testing.T) {
	tr := newT(t)
	for _, size := range []int{100, 1232, 1233, 1400} {
		pkt := build(t, ip6(layers.IPProtocolUDP, server6, client6), &layers.UDP{SrcPort: 53, DstPort: 1000}, payloadOf(size))
		out := one(t, tr, pkt)
		h := header.IPv4(out)
		if h.TOS() != 0x28 || h.TTL() != 63 || h.Protocol() != header.ProtoUDP || h.IHL() != 20 {
			t.Errorf("TOS %#x TTL %d proto %d IHL %d", h.TOS(), h.TTL(), h.Protocol(), h.IHL())
		}
		if !net.IP(h.Src()).Equal(server4) || !net.IP(h.Dst()).Equal(client4) {
			t.Errorf("addresses %v -> %v", net.IP(h.Src()), net.IP(h.Dst()))
		}
		if h.DF() != (len(out) > 1260) || h.MF() || h.FragOffset() != 0 {
			t.Errorf("size %d: DF %v", len(out), h.DF())
		}
	}
}

// RFC 7915 section 5.1 "TTL": hop limit 1 runs out here; ICMPv6 Time
// Exceeded goes back from the translator's IPv6 address.
func TestRFC7915Section5_1HopLimitExpiry(t *testing.T) {
	tr := newT(t)
	l3 := ip6(layers.IPProtocolUDP, server6, client6)
	l3.HopLimit = 1
	pkt := build(t, l3, &layers.UDP{SrcPort: 1, DstPort: 2}, payloadOf(10))
	res, r := run(t, tr, pkt, header.Offload{})
	if r != DropTTLExpired || len(res) != 1 {
		t.Fatalf("%v %d", r, len(res))
	}
	checkPacket(t, res[0])
	if res[0][40] != 3 || res[0][41] != 0 || !net.IP(header.IPv6(res[0]).Dst()).Equal(server6) {
		t.Fatalf("want ICMPv6 3/0 to server: % x", res[0][:48])
	}
}

// RFC 7915 section 5.1: Hop-by-Hop, Destination Options and Routing headers
// with Segments Left 0 are skipped; the protocol is the upper layer's.
func TestRFC7915Section5_1ExtensionHeadersSkipped(t *testing.T) {
	tr := newT(t)
	udp := build(t, ip6(layers.IPProtocolUDP, server6, client6), &layers.UDP{SrcPort: 1, DstPort: 2}, payloadOf(30))
	// Insert HBH (8 bytes), Destination Options (8), Routing type 0 with Segments Left 0 (8).
	ext := []byte{60, 0, 1, 4, 0, 0, 0, 0, 43, 0, 1, 4, 0, 0, 0, 0, 17, 0, 0, 0, 0, 0, 0, 0}
	pkt := append(append(append([]byte(nil), udp[:40]...), ext...), udp[40:]...)
	pkt[6] = 0
	header.IPv6(pkt).SetPayloadLen(len(pkt) - 40)
	out := one(t, tr, pkt)
	if header.IPv4(out).Protocol() != header.ProtoUDP || !bytes.Equal(out[20:], udp[40:]) && len(out) != 20+38 {
		t.Fatalf("got % x", out)
	}
	// Segments Left non-zero: Parameter Problem pointing at it.
	ext[16+3] = 1
	pkt = append(append(append([]byte(nil), udp[:40]...), ext...), udp[40:]...)
	pkt[6] = 0
	header.IPv6(pkt).SetPayloadLen(len(pkt) - 40)
	res, r := run(t, tr, pkt, header.Offload{})
	if r != DropRoutingHeader || len(res) != 1 || res[0][40] != 4 || binary.BigEndian.Uint32(res[0][44:]) != 40+16+3 {
		t.Fatalf("routing header: %v % x", r, res)
	}
}

// RFC 7915 section 5.1.1: a Fragment header becomes the IPv4 fragment
// fields (low 16 bits of the Identification, offset, MF; DF clear).
func TestRFC7915Section5_1_1Fragments(t *testing.T) {
	tr := newT(t)
	full := build(t, ip6(layers.IPProtocolUDP, server6, client6), &layers.UDP{SrcPort: 1, DstPort: 2}, payloadOf(392))
	data := full[40:]
	var got []byte
	for i, off := range []int{0, 200} {
		chunk := data[off:min(off+200, len(data))]
		f := append(append([]byte(nil), full[:40]...), make([]byte, 8)...)
		f[6] = header.ProtoIPv6Frag
		header.IPv6Frag(f[40:]).Set(header.ProtoUDP, off, i == 0, 0xabcd1234)
		f = append(f, chunk...)
		header.IPv6(f).SetPayloadLen(len(f) - 40)
		out := one(t, tr, f)
		h := header.IPv4(out)
		if h.ID() != 0x1234 || h.FragOffset() != off || h.MF() != (i == 0) || h.DF() {
			t.Errorf("fragment %d: id %#x off %d MF %v DF %v", i, h.ID(), h.FragOffset(), h.MF(), h.DF())
		}
		got = append(got, out[20:]...)
	}
	if header.Checksum(got, header.PseudoSum(server4, client4, header.ProtoUDP, len(got))) != 0 {
		t.Error("reassembled UDP checksum wrong")
	}
}

// RFC 7915 section 5.2: ICMPv6 types and codes.
func TestRFC7915Section5_2ICMPMapping(t *testing.T) {
	cases := []struct {
		typ, code uint8
		drop      bool
		t4, c4    uint8
	}{
		{128, 0, false, 8, 0}, {129, 0, false, 0, 0},
		{1, 0, false, 3, 1}, {1, 1, false, 3, 10}, {1, 2, false, 3, 1}, {1, 3, false, 3, 1},
		{1, 4, false, 3, 3}, {1, 5, true, 0, 0}, {1, 6, true, 0, 0},
		{2, 0, false, 3, 4}, {3, 0, false, 11, 0}, {3, 1, false, 11, 1},
		{4, 0, false, 12, 0}, {4, 1, false, 3, 2}, {4, 2, true, 0, 0},
		{130, 0, true, 0, 0}, {133, 0, true, 0, 0}, {135, 0, true, 0, 0}, {136, 0, true, 0, 0}, {143, 0, true, 0, 0},
		{100, 0, true, 0, 0}, {200, 0, true, 0, 0},
	}
	for _, c := range cases {
		tr := newT(t)
		res, r := run(t, tr, icmp6Packet(t, c.typ, c.code, 0, 100), header.Offload{})
		if c.drop {
			if r != DropICMPType || len(res) != 0 {
				t.Errorf("ICMPv6 %d/%d: %v, want dropped", c.typ, c.code, r)
			}
			continue
		}
		if r != OK || len(res) != 1 {
			t.Errorf("ICMPv6 %d/%d: %v", c.typ, c.code, r)
			continue
		}
		checkPacket(t, res[0])
		if res[0][20] != c.t4 || res[0][21] != c.c4 {
			t.Errorf("ICMPv6 %d/%d -> %d/%d, want %d/%d", c.typ, c.code, res[0][20], res[0][21], c.t4, c.c4)
		}
	}
}

// RFC 7915 section 5.2, figure 6: Parameter Problem pointers.
func TestRFC7915Section5_2ParameterProblemPointer(t *testing.T) {
	want := map[uint32]int{0: 0, 1: 1, 2: -1, 3: -1, 4: 2, 5: 2, 6: 9, 7: 8, 8: 12, 23: 12, 24: 16, 39: 16, 40: -1}
	for p, w := range want {
		tr := newT(t)
		res, r := run(t, tr, icmp6Packet(t, 4, 0, p, 100), header.Offload{})
		if w < 0 {
			if r != DropICMPType {
				t.Errorf("pointer %d: %v, want dropped", p, r)
			}
			continue
		}
		if r != OK || int(res[0][24]) != w {
			t.Errorf("pointer %d -> %v, want %d", p, r, w)
		}
	}
}

// RFC 7915 section 5.2: Packet Too Big -> Fragmentation Needed, MTU - 20
// (and the configured next-hop MTUs as upper bounds).
func TestRFC7915Section5_2FragmentationNeededMTU(t *testing.T) {
	for _, c := range []struct {
		adv, mtu4, want int
	}{{1500, 0, 1480}, {1280, 0, 1260}, {1400, 1300, 1300}, {9000, 0, 8980}} {
		cfg := testConfig(t)
		cfg.MTU4 = c.mtu4
		tr, _ := New(cfg)
		out := one(t, tr, icmp6Packet(t, 2, 0, uint32(c.adv), 1300))
		if got := int(binary.BigEndian.Uint16(out[26:])); got != c.want {
			t.Errorf("PTB %d -> %d, want %d", c.adv, got, c.want)
		}
	}
}

// RFC 7915 section 5.3: the packet inside an ICMPv6 error is translated;
// the ICMPv4 error stays within 576 bytes (RFC 1812 section 4.3.2.3).
func TestRFC7915Section5_3InnerPacket(t *testing.T) {
	tr := newT(t)
	out := one(t, tr, icmp6Packet(t, 1, 4, 0, 1200))
	if len(out) > 576 {
		t.Fatalf("ICMPv4 error is %d bytes", len(out))
	}
	inner := header.IPv4(out[28:])
	if !net.IP(inner.Src()).Equal(client4) || !net.IP(inner.Dst()).Equal(server4) || inner.Protocol() != header.ProtoUDP {
		t.Fatalf("inner %v -> %v", net.IP(inner.Src()), net.IP(inner.Dst()))
	}
	if inner.TotalLen() != 20+1200-40 {
		t.Errorf("inner total length %d", inner.TotalLen())
	}
	if header.Checksum(out[28:48], 0) != 0 {
		t.Error("inner IPv4 header checksum")
	}
}

// RFC 7915 section 5.1 "Source Address" and RFC 6791: an ICMPv6 error from
// an address with no IPv4 mapping gets the RFC 6791 source (192.0.0.8).
func TestRFC6791UntranslatableErrorSource(t *testing.T) {
	tr := newT(t)
	pkt := icmp6Packet(t, 3, 0, 0, 100)
	copy(pkt[8:24], router6.To16())
	fixICMP6(pkt)
	out := one(t, tr, pkt)
	if !net.IP(header.IPv4(out).Src()).Equal(net.IPv4(192, 0, 0, 8)) {
		t.Fatalf("source %v", net.IP(header.IPv4(out).Src()))
	}
	// A non-error from such a source is dropped.
	udp := build(t, ip6(layers.IPProtocolUDP, router6, client6), &layers.UDP{SrcPort: 1, DstPort: 2}, payloadOf(10))
	if _, r := run(t, tr, udp, header.Offload{}); r != DropUntranslatableSrc {
		t.Fatalf("%v", r)
	}
}

// RFC 4884 section 4.1 via RFC 7915 section 5.2: extensions survive 6->4,
// and the original datagram field, 20 bytes shorter once translated, is
// zero-padded back to the 128 octets RFC 4884 requires with extensions.
func TestRFC4884ExtensionsFrom6To4(t *testing.T) {
	tr := newT(t)
	pkt := icmp6Packet(t, 3, 0, 0, 300)
	ext := []byte{0x20, 0, 0, 0, 0, 8, 1, 1, 1, 2, 3, 4}
	binary.BigEndian.PutUint16(ext[2:], header.Checksum(ext, 0))
	pkt = append(pkt[:48+128:48+128], ext...)
	pkt[44] = 16 // 128 bytes in 64-bit words
	header.IPv6(pkt).SetPayloadLen(len(pkt) - 40)
	fixICMP6(pkt)
	out := one(t, tr, pkt)
	l := int(out[25]) * 4
	if l != 128 { // 108 bytes of translated quote, zero-padded to 128
		t.Fatalf("ICMPv4 length field %d bytes, want 128", l)
	}
	if !bytes.Equal(out[28+108:28+128], make([]byte, 20)) {
		t.Error("padding not zero")
	}
	if !bytes.Equal(out[28+l:], ext) {
		t.Fatalf("extension lost: % x", out[28+l:])
	}
}

// icmp6Packet is an ICMPv6 message from the server to the client: an echo
// for 128/129 and unknown informational types, else an error quoting an
// innerLen-byte UDP packet the client sent; p goes to bytes 4-7.
func icmp6Packet(t testing.TB, typ, code uint8, p uint32, innerLen int) []byte {
	t.Helper()
	var body []byte
	if typ >= 128 {
		body = []byte{0, 1, 0, 2, 'p', 'i', 'n', 'g'}
	} else {
		in := build(t, ip6(layers.IPProtocolUDP, client6, server6), &layers.UDP{SrcPort: 1000, DstPort: 53}, payloadOf(innerLen-48))
		body = make([]byte, 4, 4+len(in))
		binary.BigEndian.PutUint32(body, p)
		body = append(body, in[:min(len(in), 1232)]...)
	}
	msg := append([]byte{typ, code, 0, 0}, body...)
	pkt := build(t, ip6(layers.IPProtocolICMPv6, server6, client6), gopacket.Payload(msg))
	fixICMP6(pkt)
	return pkt
}

func fixICMP6(pkt []byte) {
	h := header.IPv6(pkt)
	binary.BigEndian.PutUint16(pkt[42:], 0)
	binary.BigEndian.PutUint16(pkt[42:], header.Checksum(pkt[40:], header.PseudoSum(h.Src(), h.Dst(), header.ProtoICMPv6, len(pkt)-40)))
}

// RFC 4443 section 2.4 (e.3): no ICMPv6 error about a packet to a multicast
// address, so an MLD report (ff02::16, hop limit 1, as the kernel sends on
// the TUN) gets no Time Exceeded; it is dropped and counted as multicast,
// not as an expired hop limit.
func TestRFC4443Section2_4NoTimeExceededForMulticast(t *testing.T) {
	tr := newT(t)
	l3 := ip6(layers.IPProtocolUDP, client6, net.ParseIP("ff02::16"))
	l3.HopLimit = 1
	res, r := run(t, tr, build(t, l3, &layers.UDP{SrcPort: 1, DstPort: 2}, payloadOf(20)), header.Offload{})
	if r != DropMulticast || len(res) != 0 {
		t.Fatalf("reason %v, %d packets out; want %v and none", r, len(res), DropMulticast)
	}
	if tr.Stats.Drops[DropTTLExpired].Load() != 0 {
		t.Error("counted as ttl_expired")
	}
}

// RFC 7915 section 5.3: an ICMPv6 error quoting an ICMPv6 error is dropped;
// one quoting an Echo Request is translated.
func TestRFC7915Section5_3ErrorAboutAnErrorDropped(t *testing.T) {
	quoting := func(innerType uint8) []byte {
		inner := build(t, ip6(layers.IPProtocolICMPv6, client6, server6),
			&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(innerType, 0)}, payloadOf(48))
		pkt := build(t, ip6(layers.IPProtocolICMPv6, server6, client6), gopacket.Payload(append([]byte{1, 4, 0, 0, 0, 0, 0, 0}, inner...)))
		fixICMP6(pkt)
		return pkt
	}
	tr := newT(t)
	if res, r := run(t, tr, quoting(3), header.Offload{}); r != DropBadInner || len(res) != 0 {
		t.Errorf("error quoting Time Exceeded: reason %v, %d packets out", r, len(res))
	}
	if res, r := run(t, tr, quoting(128), header.Offload{}); r != OK || len(res) != 1 {
		t.Errorf("error quoting an Echo Request: reason %v, %d packets out", r, len(res))
	}
}

// RFC 7915 section 5.1.1 and RFC 6946: an atomic fragment (Fragment header,
// offset 0, M clear) carries the whole packet, so an ICMPv6 Echo or error in
// one is translated (its checksum is computable), with the Identification's
// low 16 bits and DF clear; a real first fragment of ICMPv6 is still dropped.
func TestRFC7915Section5_1_1AtomicFragmentICMPv6(t *testing.T) {
	tr := newT(t)
	full := build(t, ip6(layers.IPProtocolICMPv6, client6, server6),
		&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(128, 0)}, &layers.ICMPv6Echo{Identifier: 7, SeqNumber: 1}, payloadOf(32))
	out := one(t, tr, atomicFragment(full, false))
	checkPacket(t, out)
	h := header.IPv4(out)
	if h.Protocol() != header.ProtoICMP || out[20] != 8 || h.ID() != 0x1234 || h.DF() || h.MF() || h.FragOffset() != 0 {
		t.Fatalf("proto %d type %d id %#x DF %v MF %v offset %d", h.Protocol(), out[20], h.ID(), h.DF(), h.MF(), h.FragOffset())
	}
	if res, r := run(t, tr, atomicFragment(full, true), header.Offload{}); r != DropFragmentedICMP || len(res) != 0 {
		t.Errorf("first fragment of an ICMPv6 message: %v, %d packets out", r, len(res))
	}
	// An error (port unreachable) in an atomic fragment: the same
	// Identification rule holds for the packet the error becomes.
	out = one(t, tr, atomicFragment(icmp6Packet(t, 1, 4, 0, 100), false))
	if h := header.IPv4(out); out[20] != 3 || out[21] != 3 || h.ID() != 0x1234 || h.DF() || h.MF() {
		t.Fatalf("error in an atomic fragment: type %d/%d id %#x DF %v MF %v, want 3/3 id 0x1234", out[20], out[21], h.ID(), h.DF(), h.MF())
	}
}

// atomicFragment puts a Fragment header (offset 0, Identification
// 0xabcd1234, M as more: then a first fragment) between full's IPv6 header
// and its payload.
func atomicFragment(full []byte, more bool) []byte {
	f := make([]byte, header.IPv6FragLen)
	header.IPv6Frag(f).Set(0, 0, more, 0xabcd1234) // (insertExt sets the next header)
	return insertExt(full, header.ProtoIPv6Frag, f)
}

// RFC 7915 section 5.1 "Total Length" and RFC 2675: a Payload Length of
// zero is a jumbogram only with a Jumbo Payload option in a Hop-by-Hop
// header (then no IPv4 packet can carry it: dropped as too big); without
// one it is an empty payload, translated as such (No Next Header here).
func TestRFC2675PayloadLengthZero(t *testing.T) {
	tr := newT(t)
	jumbo := build(t, ip6(layers.IPProtocolUDP, server6, client6), &layers.UDP{SrcPort: 1, DstPort: 2}, payloadOf(10))
	hbh := []byte{header.ProtoUDP, 0, 0xc2, 4, 0, 1, 0x11, 0x70} // Jumbo Payload length 70000
	jumbo = append(append(append([]byte(nil), jumbo[:40]...), hbh...), jumbo[40:]...)
	jumbo[6] = header.ProtoHopOpts
	header.IPv6(jumbo).SetPayloadLen(0)
	if res, r := run(t, tr, jumbo, header.Offload{}); r != DropTooBig || len(res) != 0 {
		t.Errorf("jumbogram: %v, %d packets out", r, len(res))
	}
	empty := build(t, ip6(layers.IPProtocolNoNextHeader, server6, client6))
	out := one(t, tr, empty)
	checkPacket(t, out)
	if h := header.IPv4(out); h.TotalLen() != 20 || h.Protocol() != 59 {
		t.Errorf("empty payload: total length %d protocol %d", h.TotalLen(), h.Protocol())
	}
}

// RFC 4884 section 4.1: a short original datagram (here 64 octets, from a
// sender that did not pad) is zero-padded to 128 octets when extensions go
// with it, in both directions.
func TestRFC4884ShortOriginalPaddedTo128(t *testing.T) {
	ext := []byte{0x20, 0, 0, 0, 0, 8, 1, 1, 1, 2, 3, 4}
	binary.BigEndian.PutUint16(ext[2:], header.Checksum(ext, 0))

	tr := newT(t)
	pkt := icmp6Packet(t, 3, 0, 0, 300)
	pkt = append(pkt[:48+64:48+64], ext...)
	pkt[44] = 8 // 64 bytes in 64-bit words
	header.IPv6(pkt).SetPayloadLen(len(pkt) - 40)
	fixICMP6(pkt)
	out := one(t, tr, pkt)
	if l := int(out[25]) * 4; l != 128 || !bytes.Equal(out[28+l:], ext) {
		t.Errorf("6->4: length field %d bytes, want 128, extension % x", l, out[28:])
	}

	p4 := icmp4PacketInner(t, 11, 0, 0, 200)
	msg := append(append([]byte(nil), p4[20:28]...), p4[28:28+64]...)
	msg[5] = 16 // 64 bytes in 32-bit words
	msg = append(msg, ext...)
	p4 = append(p4[:20:20], msg...)
	header.IPv4(p4).SetTotalLen(len(p4))
	header.IPv4(p4).SetChecksum()
	fixICMP4(p4)
	out = one(t, tr, p4)
	if l := int(out[44]) * 8; l != 128 || !bytes.Equal(out[48+l:], ext) {
		t.Errorf("4->6: length field %d bytes, want 128, extension % x", l, out[48:])
	}
}

// RFC 7915 section 1.4 (and 5.1 "Flags"): nothing leaves bigger than the
// IPv4 next hop's MTU. An IPv6 packet over 1280 bytes gets Packet Too Big
// (MTU4 + 20, quoting the packet as it arrived); one of at most 1280 bytes,
// or one whose Packet Too Big would say less than 1280 (which IPv6 hosts
// ignore, RFC 8201 section 4), is fragmented to fit.
func TestRFC7915Section1_4IPv4NextHopMTU(t *testing.T) {
	udp := func(n int) []byte {
		return build(t, ip6(layers.IPProtocolUDP, server6, client6), &layers.UDP{SrcPort: 1, DstPort: 2}, payloadOf(n-48))
	}
	c := testConfig(t)
	c.MTU4 = 1400
	tr, _ := New(c)
	big := udp(1500)
	res, r := run(t, tr, append([]byte(nil), big...), header.Offload{})
	if r != DropTooBig || len(res) != 1 {
		t.Fatalf("1500-byte IPv6, MTU4 1400: %v, %d packets", r, len(res))
	}
	if m := res[0][40:]; m[0] != 2 || binary.BigEndian.Uint32(m[4:]) != 1420 || !bytes.Equal(m[8:], big[:len(m)-8]) {
		t.Errorf("want Packet Too Big MTU 1420 quoting the packet: type %d mtu %d", m[0], binary.BigEndian.Uint32(m[4:]))
	}
	for _, mtu4 := range []int{1000, 1200} {
		c.MTU4 = mtu4
		tr, _ := New(c)
		pkt := udp(map[int]int{1000: 1280, 1200: 1500}[mtu4])
		res, r := run(t, tr, pkt, header.Offload{})
		if r != OK || len(res) < 2 {
			t.Fatalf("MTU4 %d: %v, %d packets", mtu4, r, len(res))
		}
		var data []byte
		for i, f := range res {
			checkPacket(t, f)
			h := header.IPv4(f)
			if len(f) > mtu4 || h.DF() || h.FragOffset() != len(data) || h.MF() != (i < len(res)-1) {
				t.Errorf("MTU4 %d fragment %d: %d bytes DF %v offset %d MF %v", mtu4, i, len(f), h.DF(), h.FragOffset(), h.MF())
			}
			data = append(data, f[20:]...)
		}
		if header.Checksum(data, header.PseudoSum(server4, client4, header.ProtoUDP, len(data))) != 0 {
			t.Errorf("MTU4 %d: reassembled UDP checksum wrong", mtu4)
		}
	}
}

// RFC 7915 section 5.1 "Total Length": an IPv6 packet whose Fragment header
// is followed by another extension header SHOULD be dropped; translated,
// only its first fragment would lose that header (an 8-byte hole, two
// Protocol values: IPv4 reassembly fails). Every fragment is dropped, and
// the first is answered as section 5.4 allows (1/1).
func TestRFC7915Section5_1FragmentHeaderThenExtensionHeaderDropped(t *testing.T) {
	tr := newT(t)
	full := build(t, ip6(layers.IPProtocolUDP, server6, client6), &layers.UDP{SrcPort: 1, DstPort: 2}, payloadOf(392))
	data := append([]byte{header.ProtoUDP, 0, 1, 4, 0, 0, 0, 0}, full[40:]...) // Destination Options (PadN) + UDP
	for i, off := range []int{0, 200} {
		f := append(append([]byte(nil), full[:40]...), make([]byte, 8)...)
		f[6] = header.ProtoIPv6Frag
		header.IPv6Frag(f[40:]).Set(header.ProtoDstOpts, off, i == 0, 0xabcd1234)
		f = append(f, data[off:min(off+200, len(data))]...)
		header.IPv6(f).SetPayloadLen(len(f) - 40)
		res, r := run(t, tr, f, header.Offload{})
		if r != DropExtHeaders {
			t.Errorf("fragment at %d: %v", off, r)
		}
		for _, p := range res {
			if p[0]>>4 != 6 || p[40] != 1 || p[41] != 1 {
				t.Errorf("fragment at %d: sent % x", off, p[:min(len(p), 48)])
			}
		}
		if i == 0 && len(res) != 1 {
			t.Errorf("first fragment: %d packets back, want the 1/1 error", len(res))
		}
	}
}

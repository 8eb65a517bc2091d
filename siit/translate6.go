package siit

import (
	"github.com/gluon-464xlat/gluon-464xlat/header"
)

// maxExtHeaders bounds the extension header walk so a hostile chain costs
// little; real traffic has one or two.
const maxExtHeaders = 8

// ext6 is what walking an IPv6 header chain found.
type ext6 struct {
	proto     uint8 // upper-layer protocol (first non-extension next header)
	l4        int   // offset of the upper-layer header
	frag      bool
	fragID    uint32
	fragOff   int
	fragMore  bool
	routingAt int  // offset of a Routing header with Segments Left > 0, or -1
	fragExt   bool // an extension header follows the Fragment header
}

// isExt6 reports the extension headers walkExt6 knows (RFC 7915 section 5.1).
func isExt6(nh uint8) bool {
	switch nh {
	case header.ProtoHopOpts, header.ProtoDstOpts, header.ProtoRouting, header.ProtoIPv6Frag:
		return true
	}
	return false
}

// walkExt6 follows the extension headers of an IPv6 packet (RFC 7915 section
// 5.1: Hop-by-Hop, Destination Options and Routing headers with Segments Left
// zero are skipped; a Fragment header becomes IPv4 fragment fields). In a
// truncated inner packet (partial true) it stops at the end of the data.
func walkExt6(pkt []byte, partial bool) (ext6, Reason) {
	e := ext6{routingAt: -1}
	nh := header.IPv6(pkt).NextHeader()
	off := header.IPv6Len
	for i := 0; ; i++ {
		if i > maxExtHeaders {
			return e, DropExtHeaders
		}
		switch nh {
		case header.ProtoHopOpts, header.ProtoDstOpts, header.ProtoRouting:
			if off+8 > len(pkt) {
				return e, DropTruncated
			}
			if nh == header.ProtoRouting && pkt[off+3] != 0 && e.routingAt < 0 {
				e.routingAt = off + 3
			}
			nh = pkt[off]
			off += (int(pkt[off+1]) + 1) * 8
			if off > len(pkt) && !partial {
				return e, DropTruncated
			}
			continue
		case header.ProtoIPv6Frag:
			if off+header.IPv6FragLen > len(pkt) {
				return e, DropTruncated
			}
			if e.frag {
				return e, DropExtHeaders // two Fragment headers
			}
			f := header.IPv6Frag(pkt[off:])
			e.frag, e.fragID, e.fragOff, e.fragMore = true, f.ID(), f.Offset(), f.More()
			nh = f.NextHeader()
			off += header.IPv6FragLen
			if isExt6(nh) {
				// Section 5.1 "Total Length": a Fragment header followed by
				// another extension header SHOULD be dropped (the IPv4
				// fragments could not be reassembled: only the first would
				// lose it).
				e.fragExt = true
				return e, DropExtHeaders
			}
			if e.fragOff != 0 {
				// Headers after it belong to the fragmentable part: not ours to parse.
				e.proto, e.l4 = nh, off
				return e, OK
			}
			continue
		}
		e.proto, e.l4 = nh, off
		return e, OK
	}
}

// translate6to4 is RFC 7915 section 5.1 (IPv6 header to IPv4 header), with
// the transport and ICMP steps it calls.
func (t *Translator) translate6to4(in *Packet, out *Batch) Reason {
	k := t.cfg.Load()
	pkt := in.Buf[in.Start : in.Start+in.Len]
	if len(pkt) < header.IPv6Len {
		return DropTruncated
	}
	h := header.IPv6(pkt)
	plen := h.PayloadLen()
	if plen == 0 && isJumbogram(pkt) {
		return DropTooBig // RFC 2675: no IPv4 packet is that big
	}
	if header.IPv6Len+plen > len(pkt) {
		return DropBadLength
	}
	pkt = pkt[:header.IPv6Len+plen]
	// Multicast is not translated (section 1.2), and no ICMPv6 error goes
	// back about it (RFC 4443 section 2.4 (e.3)): the kernel's own MLD
	// reports on the TUN (ff02::16, hop limit 1) end here, counted apart.
	if h.Dst()[0] == 0xff {
		return DropMulticast
	}
	e, r := walkExt6(pkt, false)
	if r != OK {
		if e.fragExt && e.fragOff == 0 {
			t.originate6(k, pkt, 1, 1, 0, out) // section 5.4
		}
		return r
	}
	hop := h.HopLimit()
	if !k.cfg.NoDecrementTTL {
		if hop <= 1 {
			t.originate6(k, pkt, 3, 0, 0, out) // Time Exceeded: hop limit exceeded in transit
			return DropTTLExpired
		}
		hop--
	}
	if e.routingAt >= 0 {
		// Section 5.1: a Routing header with Segments Left non-zero is not
		// translated; Parameter Problem code 0 points at Segments Left.
		t.originate6(k, pkt, 4, 0, uint32(e.routingAt), out)
		return DropRoutingHeader
	}
	if e.l4 > len(pkt) {
		return DropTruncated
	}
	v := hdr4{tos: h.TrafficClass(), ttl: hop, proto: e.proto}
	if !k.map6to4(v.dst[:], h.Dst(), false) {
		// Section 5.4: a packet dropped for an address that does not map
		// gets Destination Unreachable, administratively prohibited.
		t.originate6(k, pkt, 1, 1, 0, out)
		return DropUntranslatableDst
	}
	if len(k.deny4) > 0 && k.denied4(v.dst[:]) {
		t.originate6(k, pkt, 1, 1, 0, out) // administratively prohibited
		return DropRefusedDst
	}
	// Section 5.1.1 and RFC 6946: an atomic fragment (offset 0, M clear) is
	// the whole packet; only a real fragment hides part of an ICMPv6 message.
	fragmented := e.frag && (e.fragOff != 0 || e.fragMore)
	isICMPErr := e.proto == header.ProtoICMPv6 && !fragmented && e.l4 < len(pkt) && pkt[e.l4] < 128
	// RFC 7757 section 4.2.2, condition A: the destination is an IPv6 host
	// behind an EAM, addressed through the pool by its IPv4 address; the
	// packet turns back to IPv6 here (hairpin4to6) and never meets the IPv4
	// MTU. (Condition B, for errors, is checked on the translated quote.)
	hairpin := !isICMPErr && k.hairpins(h.Dst(), v.dst[:])
	// (an error opens no session: it gets no client address)
	if !k.map6to4(v.src[:], h.Src(), !isICMPErr) {
		if !isICMPErr {
			t.originate6(k, pkt, 1, 1, 0, out) // section 5.4, as above
			return DropUntranslatableSrc
		}
		v.src = k.pool6791 // RFC 6791 / RFC 7915 section 5.1 "Source Address"
	}
	payload := pkt[e.l4:]
	if e.frag {
		// Section 5.1.1: fragment fields come from the Fragment header; DF clear.
		v.id, v.offset, v.more, v.frag = uint16(e.fragID), e.fragOff, e.fragMore, true
	} else {
		v.id = t.nextID()
		// Section 5.1 "Flags": DF only on packets larger than 1260 bytes; for
		// a super-packet the segments are what the wire sees.
		size := header.IPv4MinLen + len(payload)
		if in.Offload.GSOType != header.GSONone && len(payload) >= header.TCPMinLen {
			size = header.IPv4MinLen + int(payload[12]>>4)*4 + int(in.Offload.GSOSize)
		}
		v.df = size > 1260
	}
	if e.proto == header.ProtoICMPv6 && fragmented {
		return DropFragmentedICMP
	}
	// Section 1.4 / 5.1: the IPv4 next hop's MTU, decided on the packet as
	// it arrived (a Packet Too Big quotes it unchanged). An IPv6 packet
	// over 1280 bytes (DF set) gets Packet Too Big, as IPv6 sources expect;
	// a smaller one, or one whose MTU would be under 1280 (ignored by IPv6
	// hosts, RFC 8201 section 4), is fragmented here.
	fragment, csumDone := false, false
	if k.cfg.MTU4 > 0 && in.Offload.GSOType == header.GSONone && !isICMPErr && !hairpin && header.IPv4MinLen+len(payload) > k.cfg.MTU4 {
		if ptb := k.cfg.MTU4 + header.IPv6Len - header.IPv4MinLen; v.df && ptb >= header.IPv6MinMTU {
			t.originate6(k, pkt, 2, 0, uint32(ptb), out)
			return DropTooBig
		}
		fragment = true
	}
	switch e.proto {
	case header.ProtoICMPv6:
		v.proto = header.ProtoICMP
		if r, done := t.icmp6to4(k, pkt, e.l4, &v, in.Offload.NeedsCsum, out); done {
			if r == OK && isICMPErr && t.errorHairpins(k, pkt[e.l4:], out) {
				return t.hairpin4to6(out)
			}
			return r
		}
		csumDone = true // an Echo's checksum is whole now (fixEchoChecksum)
	case header.ProtoICMP:
		return DropWrongICMPFamily
	case header.ProtoTCP, header.ProtoUDP:
		if !e.frag || e.fragOff == 0 {
			// RFC 7915 section 5.5; a zero UDP checksum (invalid in IPv6) stays
			// zero, which IPv4 reads as "none".
			if _, r := fixTransport(pkt[e.l4:], v.proto, h.Src(), h.Dst(), v.src[:], v.dst[:], in.Offload.NeedsCsum, k.cfg.MaxMSS); r != OK {
				return r
			}
		}
	}
	if fragment {
		return t.fragment6to4(k, &v, payload, out)
	}
	if header.IPv4MinLen+len(payload) > header.IPv4MaxTotal {
		return DropTooBig
	}
	start := in.Start + e.l4 - header.IPv4MinLen
	v.write(in.Buf[start:], len(payload))
	o := in.Offload
	if csumDone {
		o.NeedsCsum = false // nothing left for the kernel to finish
	}
	if o.GSOType&^header.GSOECN == header.GSOTCPv6 {
		o.GSOType = header.GSOTCPv4 | o.GSOType&header.GSOECN
		t.Stats.GSO.Add(1)
	}
	out.add(in.Buf, start, header.IPv4MinLen+len(payload), o)
	t.Stats.Out6to4.Add(1)
	if hairpin {
		return t.hairpin4to6(out)
	}
	return OK
}

// errorHairpins is RFC 7757 section 4.2.2's condition B: an ICMPv6 error
// (msg) whose quoted packet came from a hairpinned conversation, i.e. its
// source was mapped through the pool to an address an EAM holds. out holds
// the translated ICMPv4 error.
func (t *Translator) errorHairpins(k *compiled, msg []byte, out *Batch) bool {
	q := out.Pkts[0].Bytes()
	if len(k.eams) == 0 || len(msg) < header.ICMPLen+header.IPv6Len || len(q) < header.IPv4MinLen+header.ICMPLen+header.IPv4MinLen {
		return false
	}
	src6 := msg[header.ICMPLen+8 : header.ICMPLen+24]
	src4 := q[header.IPv4MinLen+header.ICMPLen+12 : header.IPv4MinLen+header.ICMPLen+16]
	return k.hairpins(src6, src4)
}

// hairpin4to6 is RFC 7757 section 4.2.2's intrinsic hairpinning: the IPv4
// packet just made is for an IPv6 host behind an EAM, so it is translated
// back to IPv6 at once (out then holds the IPv6 packet) rather than handed to
// IPv4 routing, which would bring it back with its source mapped by the EAM.
func (t *Translator) hairpin4to6(out *Batch) Reason {
	p := out.Pkts[0]
	if &p.Buf[0] == &t.scratch[0] {
		// An ICMP error built in scratch, where 4->6 builds its own: move it
		// to scratch's tail, which neither uses.
		hp := t.scratch[len(t.scratch)-hairpinRoom:]
		n := copy(hp[Headroom:], p.Bytes())
		p = Packet{Buf: hp, Start: Headroom, Len: n, Offload: p.Offload}
	}
	out.N = 0
	t.Stats.Hairpinned.Add(1)
	return t.translate4to6(&p, out, true)
}

// isJumbogram reports a Payload Length of zero made valid by a Jumbo
// Payload option (type 0xC2) in a Hop-by-Hop Options header (RFC 2675
// section 2); without one, zero is an empty payload (section 5.1 reads the
// length as it is).
func isJumbogram(pkt []byte) bool {
	if header.IPv6(pkt).NextHeader() != header.ProtoHopOpts || len(pkt) < header.IPv6Len+8 {
		return false
	}
	end := header.IPv6Len + (int(pkt[header.IPv6Len+1])+1)*8
	for i := header.IPv6Len + 2; i < min(end, len(pkt)); {
		switch pkt[i] {
		case 0: // Pad1
			i++
			continue
		case 0xc2:
			return true
		}
		if i+1 >= len(pkt) {
			return false
		}
		i += 2 + int(pkt[i+1])
	}
	return false
}

func (t *Translator) nextID() uint16 {
	t.ipID++
	return uint16(t.ipID)
}

// hdr4 collects the fields of an IPv4 header to write.
type hdr4 struct {
	src, dst [4]byte
	tos, ttl uint8
	proto    uint8
	id       uint16
	df, more bool
	frag     bool
	offset   int
}

// write puts a 20-byte IPv4 header at b for a payload of n bytes (section
// 5.1 field by field: no options, header checksum computed).
func (v *hdr4) write(b []byte, n int) {
	h := header.IPv4(b)
	h[0] = 0x45
	h[1] = v.tos
	h.SetTotalLen(header.IPv4MinLen + n)
	h.SetID(v.id)
	h.SetFlagsOffset(v.df && !v.frag, v.more, v.offset)
	h.SetTTL(v.ttl)
	h.SetProtocol(v.proto)
	copy(h.Src(), v.src[:])
	copy(h.Dst(), v.dst[:])
	h.SetChecksum()
}

package siit

import (
	"github.com/gluon-464xlat/gluon-464xlat/header"
)

// Translate translates one packet. The common case is done in place: the
// result is in.Buf with a new start. ICMP errors, fragments and errors the
// translator originates are built in its scratch space, so out stays valid
// only until the next call. It returns OK or the reason the input was dropped
// (an originated ICMP error may be in out even then).
func (t *Translator) Translate(in *Packet, out *Batch) Reason {
	out.N = 0
	var r Reason
	switch {
	case in.Start < Headroom-16:
		r = DropNoHeadroom
	case in.Len < 1:
		r = DropTruncated
	case in.Buf[in.Start]>>4 == 4:
		r = t.translate4to6(in, out, false)
	case in.Buf[in.Start]>>4 == 6:
		r = t.translate6to4(in, out)
	default:
		r = DropBadHeader
	}
	if r != OK {
		t.Stats.Drops[r].Add(1)
	}
	return r
}

// translate4to6 is RFC 7915 section 4.1 (IPv4 header to IPv6 header), with
// the transport and ICMP steps it calls. hairpin is the second half of RFC
// 7757 section 4.2.2: the packet is the IPv4 form of one that just came from
// IPv6 and goes back there (not a hop of its own: the TTL stays), and its
// source maps through the RFC 6052 pool, not an EAM, so that replies come
// back through the translator.
func (t *Translator) translate4to6(in *Packet, out *Batch, hairpin bool) Reason {
	k := t.cfg.Load()
	pkt := in.Buf[in.Start : in.Start+in.Len]
	if len(pkt) < header.IPv4MinLen {
		return DropTruncated
	}
	h := header.IPv4(pkt)
	ihl := h.IHL()
	if ihl < header.IPv4MinLen || len(pkt) < ihl {
		return DropBadHeader
	}
	tot := h.TotalLen()
	if tot < ihl || tot > len(pkt) {
		return DropBadLength
	}
	pkt = pkt[:tot]
	if header.Checksum(pkt[:ihl], 0) != 0 {
		return DropBadChecksum
	}
	// Section 4.1 "Options": an unexpired source route is not followed through
	// a translator; ICMPv4 "Source Route Failed" (type 3 code 5) goes back.
	if ihl > header.IPv4MinLen && hasSourceRoute(pkt[header.IPv4MinLen:ihl]) {
		t.originate4(k, pkt, 3, 5, 0, out)
		return DropSourceRoute
	}
	// Multicast and the limited broadcast are not translated (section 1.2
	// leaves multicast out), and a router sends no ICMP error about them
	// (RFC 1812 section 4.3.2.7), so this comes before the TTL check.
	if d := h.Dst(); d[0]&0xf0 == 224 || d[0] == 255 && d[1] == 255 && d[2] == 255 && d[3] == 255 {
		return DropMulticast
	}
	ttl := h.TTL()
	if !k.cfg.NoDecrementTTL && !hairpin {
		if ttl <= 1 {
			t.originate4(k, pkt, 11, 0, 0, out) // Time Exceeded in transit
			return DropTTLExpired
		}
		ttl--
	}
	proto := h.Protocol()
	isFrag := h.IsFragment()
	firstFrag := h.FragOffset() == 0
	payload := pkt[ihl:]
	// An unfragmented ICMPv4 error: it may come from an illegal source, and
	// it is rebuilt within 1280 bytes whatever its size (below).
	isError := proto == header.ProtoICMP && !isFrag && len(payload) > 0 && isICMPv4Error(payload[0])
	var src6, dst6 [16]byte
	// Section 4.2.2 of RFC 7757: the hairpinned packet's source through the
	// pool, except in an ICMP error not from the host its quote went to.
	srcEAM := !hairpin || isError && !quotesDstAs(payload, h.Src())
	if !k.map4to6(src6[:], h.Src(), srcEAM) {
		// Section 4.1 "Source Address": a packet from an illegal source
		// (0.0.0.0/8, 127.0.0.0/8) is dropped, but an ICMPv4 error from one
		// is translated all the same, for troubleshooting.
		if s := h.Src(); !isError || !k.cfg.Pool6.Valid() || s[0] != 0 && s[0] != 127 {
			return DropUntranslatableSrc
		}
		k.cfg.Pool6.Embed(src6[:], h.Src())
	}
	if !k.map4to6(dst6[:], h.Dst(), true) {
		return DropUntranslatableDst
	}
	v := hdr6{tc: h.TOS(), hop: ttl, proto: proto, id: uint32(h.ID()), offset: h.FragOffset(), more: h.MF(), frag: isFrag}
	copy(v.src[:], src6[:])
	copy(v.dst[:], dst6[:])

	switch proto {
	case header.ProtoICMP:
		if isFrag {
			// Section 1.3 / 4.2: the ICMPv6 checksum covers a pseudo-header with
			// the whole length, unknowable per fragment; such packets are dropped.
			return DropFragmentedICMP
		}
	case header.ProtoICMPv6:
		return DropWrongICMPFamily
	case header.ProtoHopOpts, header.ProtoRouting, header.ProtoIPv6Frag, header.ProtoDstOpts:
		// Copied into Next Header (section 4.1) these would be read as IPv6
		// extension headers that are not there.
		return DropExtHeaders
	}
	// Sizes are decided on the datagram as it arrived, before any field is
	// rewritten: a Fragmentation Needed quotes it unchanged (RFC 792,
	// RFC 1812 section 4.3.2.3).
	fragment, csumDone := false, false
	if in.Offload.GSOType == header.GSONone && !isError {
		size := header.IPv6Len + fragLen(isFrag) + len(payload)
		switch {
		case h.DF() && k.cfg.MTU6 > 0 && size > k.cfg.MTU6:
			// Section 4: DF set (fragment or not) and too big for the IPv6
			// next hop: Fragmentation Needed, never fragmented here.
			mtu := k.cfg.MTU6 - (header.IPv6Len - header.IPv4MinLen) - fragLen(isFrag)
			t.originate4(k, pkt, 3, 4, uint32(max(mtu, header.IPv4MinMTU)), out)
			return DropTooBig
		case !h.DF() && size > k.fragMTU6:
			// Section 4: without DF, fragments fit the smaller of the lowest
			// IPv6 MTU and the IPv6 next hop's.
			fragment = true
		}
	}
	switch proto {
	case header.ProtoICMP:
		v.proto = header.ProtoICMPv6
		if r, done := t.icmp4to6(k, pkt, ihl, &v, in.Offload.NeedsCsum, hairpin, out); done {
			return r
		}
		csumDone = true // an Echo's checksum is whole now (fixEchoChecksum)
	case header.ProtoTCP, header.ProtoUDP:
		if !isFrag || firstFrag {
			if r := t.fixTransport4to6(k, pkt, ihl, &v, in.Offload.NeedsCsum, isFrag); r != OK {
				if r == DropUDPZeroChecksum {
					// Section 4.5: the dropped zero-checksum UDP gets
					// Destination Unreachable, administratively prohibited.
					t.originate4(k, pkt, 3, 13, 0, out)
				}
				return r
			}
		}
	}
	if fragment {
		return t.fragment4to6(k, &v, payload, out)
	}
	start := in.Start + ihl - header.IPv6Len - fragLen(isFrag)
	if start < minStart {
		return DropNoHeadroom
	}
	n := v.write(in.Buf[start:], len(payload))
	o := in.Offload
	if csumDone {
		o.NeedsCsum = false // nothing left for the kernel to finish
	}
	if o.GSOType&^header.GSOECN == header.GSOTCPv4 {
		o.GSOType = header.GSOTCPv6 | o.GSOType&header.GSOECN
		t.Stats.GSO.Add(1)
	}
	out.add(in.Buf, start, n+len(payload), o)
	t.Stats.Out4to6.Add(1)
	return OK
}

func fragLen(frag bool) int {
	if frag {
		return header.IPv6FragLen
	}
	return 0
}

// hdr6 collects the fields of an IPv6 header (and Fragment header) to write.
type hdr6 struct {
	src, dst [16]byte
	tc, hop  uint8
	proto    uint8 // upper-layer protocol
	frag     bool  // add a Fragment header
	id       uint32
	offset   int
	more     bool
}

// write puts the IPv6 header (plus Fragment header) at b for a payload of n
// bytes and returns the header length (section 4.1 field by field).
func (v *hdr6) write(b []byte, n int) int {
	h := header.IPv6(b)
	h.SetVersionClassFlow(v.tc, 0) // Flow Label: 0 (section 4.1)
	hl := header.IPv6Len
	if v.frag {
		hl += header.IPv6FragLen
		h.SetNextHeader(header.ProtoIPv6Frag)
		header.IPv6Frag(b[header.IPv6Len:]).Set(v.proto, v.offset, v.more, v.id)
	} else {
		h.SetNextHeader(v.proto)
	}
	h.SetPayloadLen(hl - header.IPv6Len + n)
	h.SetHopLimit(v.hop)
	copy(h.Src(), v.src[:])
	copy(h.Dst(), v.dst[:])
	return hl
}

// hasSourceRoute reports an LSRR (131) or SSRR (137) option with route data
// left (pointer not past the end), RFC 7915 section 4.1 "Options".
func hasSourceRoute(opts []byte) bool {
	for i := 0; i < len(opts); {
		switch opts[i] {
		case 0: // end of options
			return false
		case 1: // no-op
			i++
			continue
		}
		if i+1 >= len(opts) || opts[i+1] < 2 {
			return false
		}
		l := int(opts[i+1])
		if (opts[i] == 131 || opts[i] == 137) && i+2 < len(opts) && int(opts[i+2]) <= l {
			return true
		}
		i += l
	}
	return false
}

// quotesDstAs reports whether the packet quoted in an ICMPv4 error went to
// addr (the error comes from the quoted packet's destination).
func quotesDstAs(msg, addr []byte) bool {
	return len(msg) >= header.ICMPLen+header.IPv4MinLen && string(msg[header.ICMPLen+16:header.ICMPLen+20]) == string(addr)
}

package siit

import (
	"encoding/binary"

	"github.com/gluon-464xlat/gluon-464xlat/header"
)

// icmp6to4 is RFC 7915 section 5.2 for ICMPv6 informational messages (in
// place, done false) and errors (built in scratch, done true).
func (t *Translator) icmp6to4(k *compiled, pkt []byte, l4 int, v *hdr4, partial bool, out *Batch) (r Reason, done bool) {
	msg := pkt[l4:]
	if len(msg) < header.ICMPLen {
		return DropTruncated, true
	}
	h := header.IPv6(pkt)
	switch typ := msg[0]; typ {
	case 128, 129:
		fixEchoChecksum(msg, echo6to4(typ), 0, header.PseudoSum(h.Src(), h.Dst(), header.ProtoICMPv6, len(msg)), partial)
		return OK, false
	case 1, 2, 3, 4:
		return t.icmpErr6to4(k, pkt, l4, v, out), true
	}
	// MLD, Neighbor Discovery, unknown informational and error types: dropped.
	return DropICMPType, true
}

// icmpErr6to4 translates an ICMPv6 error with the packet inside it
// (RFC 7915 sections 5.2 and 5.3) into scratch.
func (t *Translator) icmpErr6to4(k *compiled, pkt []byte, l4 int, v *hdr4, out *Batch) Reason {
	msg := pkt[l4:]
	h := header.IPv6(pkt)
	if header.Checksum(msg, header.PseudoSum(h.Src(), h.Dst(), header.ProtoICMPv6, len(msg))) != 0 {
		return DropBadChecksum
	}
	typ, code := msg[0], msg[1]
	var nt, nc uint8
	var ptr uint8
	keepExt, isPTB := false, false
	switch typ {
	case 1: // Destination Unreachable
		switch code {
		case 0, 2, 3:
			nt, nc = 3, 1 // host unreachable
		case 1:
			nt, nc = 3, 10 // communication administratively prohibited
		case 4:
			nt, nc = 3, 3 // port unreachable
		default:
			return DropICMPType
		}
		keepExt = true
	case 2: // Packet Too Big
		nt, nc, isPTB = 3, 4, true
	case 3: // Time Exceeded
		nt, nc, keepExt = 11, code, true
	case 4: // Parameter Problem
		switch code {
		case 0:
			p, ok := pointer6to4(binary.BigEndian.Uint32(msg[4:]))
			if !ok {
				return DropICMPType
			}
			nt, nc, ptr = 12, 0, p
		case 1:
			nt, nc = 3, 2 // unrecognized Next Header -> protocol unreachable
		default:
			return DropICMPType
		}
	}
	inner, ext := split4884(msg, int(msg[4])*8)
	if !keepExt {
		ext = nil
	}
	limit := maxICMPv4Error - header.IPv4MinLen - header.ICMPLen
	if len(ext) > 0 {
		if limit-len(ext) < min4884Original {
			ext = nil
		} else {
			limit -= len(ext)
		}
	}
	b := t.scratch[Headroom:]
	m := b[header.IPv4MinLen:]
	n, innerFrag, r := k.inner6to4(m[header.ICMPLen:], inner, limit)
	if r != OK {
		return r
	}
	m[0], m[1], m[2], m[3] = nt, nc, 0, 0
	binary.BigEndian.PutUint32(m[4:], 0)
	switch {
	case isPTB:
		binary.BigEndian.PutUint16(m[6:], mtu6to4(k, binary.BigEndian.Uint32(msg[4:]), innerFrag))
	case nt == 12:
		m[4] = ptr
	}
	if len(ext) > 0 {
		n = pad4884(m[header.ICMPLen:], n, 4)
		m[5] = byte(n / 4) // RFC 4884 section 4.1: length in 32-bit words
		n += copy(m[header.ICMPLen+n:], ext)
	}
	mlen := header.ICMPLen + n
	binary.BigEndian.PutUint16(m[2:], header.Checksum(m[:mlen], 0))
	// (DF clear: the error is at most 576 bytes. The Identification is
	// the one translate6to4 chose for the packet by section 5.1 or 5.1.1.)
	v.proto, v.df, v.frag = header.ProtoICMP, false, false
	v.write(b, mlen)
	out.add(t.scratch, Headroom, header.IPv4MinLen+mlen, header.Offload{})
	t.Stats.Out6to4.Add(1)
	return OK
}

// mtu6to4 is the Fragmentation Needed MTU of RFC 7915 section 5.2:
// minimum(MTU-20 (-8 when the packet had a Fragment header), IPv4 next hop,
// IPv6 next hop-20).
func mtu6to4(k *compiled, adv uint32, innerFrag bool) uint16 {
	d := uint32(header.IPv6Len - header.IPv4MinLen)
	if innerFrag {
		d += header.IPv6FragLen
	}
	mtu := uint32(header.IPv4MinMTU)
	if adv > d {
		mtu = adv - d
	}
	if k.cfg.MTU4 > 0 {
		mtu = min(mtu, uint32(k.cfg.MTU4))
	}
	if k.cfg.MTU6 > 0 {
		mtu = min(mtu, uint32(k.cfg.MTU6)-d)
	}
	return uint16(min(max(mtu, header.IPv4MinMTU), 65535))
}

// inner6to4 translates the IPv6 packet inside an ICMPv6 error (RFC 7915
// section 5.3) into dst, cut to limit bytes.
func (k *compiled) inner6to4(dst, inner []byte, limit int) (int, bool, Reason) {
	if len(inner) < header.IPv6Len || inner[0]>>4 != 6 {
		return 0, false, DropBadInner
	}
	h := header.IPv6(inner)
	e, r := walkExt6(inner, true)
	if r != OK || e.l4 > len(inner) {
		return 0, false, DropBadInner
	}
	iv := hdr4{tos: h.TrafficClass(), ttl: h.HopLimit(), proto: e.proto}
	if !k.map6to4(iv.src[:], h.Src(), false) || !k.map6to4(iv.dst[:], h.Dst(), false) {
		return 0, false, DropBadInner
	}
	if iv.proto == header.ProtoICMPv6 {
		// Section 5.3: only an Echo can be quoted; an ICMPv6 error about an
		// ICMPv6 error (or about ND, MLD, ...) is dropped.
		if (!e.frag || e.fragOff == 0) && len(inner) > e.l4 && inner[e.l4] != 128 && inner[e.l4] != 129 {
			return 0, false, DropBadInner
		}
		iv.proto = header.ProtoICMP
	}
	declared := max(h.PayloadLen()-(e.l4-header.IPv6Len), 0)
	if e.frag {
		iv.id, iv.offset, iv.more, iv.frag = uint16(e.fragID), e.fragOff, e.fragMore, true
	} else {
		iv.df = header.IPv4MinLen+declared > 1260
	}
	iv.write(dst, declared)
	n := copy(dst[header.IPv4MinLen:limit], inner[e.l4:])
	p := dst[header.IPv4MinLen : header.IPv4MinLen+n]
	if !e.frag || e.fragOff == 0 {
		switch iv.proto {
		case header.ProtoICMP:
			if len(p) >= 4 && (p[0] == 128 || p[0] == 129) {
				fixEchoChecksum(p, echo6to4(p[0]), 0, header.PseudoSum(h.Src(), h.Dst(), header.ProtoICMPv6, declared), false)
			}
		case header.ProtoTCP, header.ProtoUDP:
			innerChecksum(p, iv.proto, header.Sum(h.Dst(), header.Sum(h.Src(), 0)), header.Sum(iv.dst[:], header.Sum(iv.src[:], 0)))
		}
	}
	return header.IPv4MinLen + n, e.frag, OK
}

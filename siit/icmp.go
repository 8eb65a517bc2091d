package siit

import (
	"encoding/binary"

	"github.com/gluon-464xlat/gluon-464xlat/header"
)

// Size limits for ICMP errors: an ICMPv6 error must fit the minimum IPv6
// MTU (RFC 4443 section 2.4 (c)); an ICMPv4 error keeps to 576 bytes
// (RFC 1812 section 4.3.2.3).
const (
	maxICMPv6Error = header.IPv6MinMTU
	maxICMPv4Error = 576
	// RFC 4884 section 5.1: with extensions, the original datagram field
	// holds at least 128 bytes.
	min4884Original = 128
)

// icmp4to6 is RFC 7915 section 4.2 for ICMPv4 queries (translated in place;
// done is false so the caller writes the IPv6 header) and errors (built in
// scratch; done is true).
func (t *Translator) icmp4to6(k *compiled, pkt []byte, ihl int, v *hdr6, partial, hairpin bool, out *Batch) (r Reason, done bool) {
	msg := pkt[ihl:]
	if len(msg) < header.ICMPLen {
		return DropTruncated, true
	}
	switch typ := msg[0]; typ {
	case 8, 0: // Echo Request/Reply -> 128/129
		fixEchoChecksum(msg, echo4to6(typ), header.PseudoSum(v.src[:], v.dst[:], header.ProtoICMPv6, len(msg)), 0, partial)
		return OK, false
	case 3, 11, 12:
		return t.icmpErr4to6(k, pkt, ihl, v, hairpin, out), true
	}
	// Information Request/Reply, Timestamp, Address Mask, Router
	// Advertisement/Solicitation, Redirect, Source Quench, unknown: dropped.
	return DropICMPType, true
}

// fixEchoChecksum changes an echo message's type and moves its checksum
// from one pseudo-header sum to another (ICMPv4 has none, ICMPv6 has one).
func fixEchoChecksum(msg []byte, newType uint8, newPseudo, oldPseudo uint64, partial bool) {
	oldWord := uint64(msg[0])<<8 | uint64(msg[1])
	msg[0] = newType
	newWord := uint64(newType)<<8 | uint64(msg[1])
	if partial {
		// Only a pseudo-header sum is there: compute the whole checksum.
		binary.BigEndian.PutUint16(msg[2:], 0)
		binary.BigEndian.PutUint16(msg[2:], header.Checksum(msg, newPseudo))
		return
	}
	icmp := header.ICMP(msg)
	icmp.SetChecksum(header.UpdateChecksum(icmp.Checksum(), oldWord+oldPseudo, newWord+newPseudo))
}

// icmpErr4to6 translates an ICMPv4 error with the packet inside it
// (RFC 7915 sections 4.2 and 4.3) into scratch.
func (t *Translator) icmpErr4to6(k *compiled, pkt []byte, ihl int, v *hdr6, hairpin bool, out *Batch) Reason {
	msg := pkt[ihl:]
	// The message is rebuilt whole: a corrupt one must not leave repaired.
	if header.Checksum(msg, 0) != 0 {
		return DropBadChecksum
	}
	typ, code := msg[0], msg[1]
	var nt, nc uint8
	var param uint32
	keepExt := false
	isPTB := false
	switch typ {
	case 3: // Destination Unreachable
		switch code {
		case 0, 1, 5, 6, 7, 8, 11, 12:
			nt, nc, keepExt = 1, 0, true // no route to destination
		case 2:
			nt, nc, param = 4, 1, 6 // Parameter Problem, pointer to Next Header
		case 3:
			nt, nc, keepExt = 1, 4, true // port unreachable
		case 4:
			nt, nc, isPTB = 2, 0, true // Packet Too Big
		case 9, 10, 13, 15:
			nt, nc, keepExt = 1, 1, true // administratively prohibited
		default: // 14 (host precedence violation) and unknown codes
			return DropICMPType
		}
	case 11: // Time Exceeded
		nt, nc, keepExt = 3, code, true
	case 12: // Parameter Problem
		if code != 0 && code != 2 {
			return DropICMPType
		}
		p, ok := pointer4to6(msg[4])
		if !ok {
			return DropICMPType
		}
		nt, nc, param = 4, 0, p
	}
	inner, ext := split4884(msg, int(msg[5])*4)
	if !keepExt {
		ext = nil
	}
	limit := maxICMPv6Error - header.IPv6Len - header.ICMPLen
	if len(ext) > 0 {
		if limit-len(ext) < min4884Original {
			ext = nil // no room for both: the original datagram matters more
		} else {
			limit -= len(ext)
		}
	}
	b := t.scratch[Headroom:]
	m := b[header.IPv6Len:]
	n, innerFrag, r := k.inner4to6(m[header.ICMPLen:], inner, limit, hairpin)
	if r != OK {
		return r
	}
	if isPTB {
		param = mtu4to6(k, msg, inner, innerFrag)
	}
	m[0], m[1], m[2], m[3] = nt, nc, 0, 0
	binary.BigEndian.PutUint32(m[4:], param)
	if len(ext) > 0 {
		n = pad4884(m[header.ICMPLen:], n, 8)
		m[4] = byte(n / 8) // RFC 4884 section 4.5: length in 64-bit words
		n += copy(m[header.ICMPLen+n:], ext)
	}
	mlen := header.ICMPLen + n
	binary.BigEndian.PutUint16(m[2:], header.Checksum(m[:mlen], header.PseudoSum(v.src[:], v.dst[:], header.ProtoICMPv6, mlen)))
	v.frag, v.proto = false, header.ProtoICMPv6
	v.write(b, mlen)
	out.add(t.scratch, Headroom, header.IPv6Len+mlen, header.Offload{})
	t.Stats.Out4to6.Add(1)
	return OK
}

// split4884 separates an ICMP error's original datagram from RFC 4884
// extensions when the length field (in bytes here) says there are any.
func split4884(msg []byte, origLen int) (inner, ext []byte) {
	if origLen > 0 && header.ICMPLen+origLen < len(msg) {
		return msg[header.ICMPLen : header.ICMPLen+origLen], msg[header.ICMPLen+origLen:]
	}
	return msg[header.ICMPLen:], nil
}

// pad zero-fills b from n up to a multiple of m and returns the new length.
func pad(b []byte, n, m int) int {
	for n%m != 0 {
		b[n] = 0
		n++
	}
	return n
}

// pad4884 zero-fills the original datagram field of an ICMP error that
// carries RFC 4884 extensions: to a multiple of the word size (4 for
// ICMPv4, 8 for ICMPv6) and to at least 128 octets (RFC 4884 sections 4.1
// and 4.5: with extensions the field MUST hold 128 octets or more). A
// translated quote changes length by the header difference, so a field
// that was exactly 128 would otherwise end short or misaligned.
func pad4884(b []byte, n, word int) int {
	n = pad(b, n, word)
	for n < min4884Original {
		b[n] = 0
		n++
	}
	return n
}

// rfc1191Plateaus are the MTU plateaus of RFC 1191 section 7.
var rfc1191Plateaus = [...]int{65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68}

// mtu4to6 is the Packet Too Big MTU of RFC 7915 section 4.2: minimum(MTU+20,
// IPv6 next hop, IPv4 next hop+20), a plateau (RFC 1191) when the router sent
// zero, and never below 1280 (an IPv6 host ignores less, RFC 8201 section 4).
func mtu4to6(k *compiled, msg, inner []byte, innerFrag bool) uint32 {
	mtu := int(binary.BigEndian.Uint16(msg[6:]))
	if mtu == 0 {
		tot := header.IPv4(inner).TotalLen()
		for _, p := range rfc1191Plateaus {
			if p < tot {
				mtu = p
				break
			}
		}
	}
	mtu += header.IPv6Len - header.IPv4MinLen
	if innerFrag {
		mtu += header.IPv6FragLen
	}
	if k.cfg.MTU6 > 0 {
		mtu = min(mtu, k.cfg.MTU6)
	}
	if k.cfg.MTU4 > 0 {
		mtu = min(mtu, k.cfg.MTU4+header.IPv6Len-header.IPv4MinLen)
	}
	return uint32(max(mtu, header.IPv6MinMTU))
}

// pointer4to6 maps a Parameter Problem pointer (RFC 7915 section 4.2, figure 3).
func pointer4to6(p uint8) (uint32, bool) {
	switch {
	case p <= 1:
		return uint32(p), true // version/IHL, TOS
	case p <= 3:
		return 4, true // total length -> payload length
	case p == 8:
		return 7, true // TTL -> hop limit
	case p == 9:
		return 6, true // protocol -> next header
	case p >= 12 && p <= 15:
		return 8, true // source address
	case p >= 16 && p <= 19:
		return 24, true // destination address
	}
	return 0, false // identification, flags, checksum: no IPv6 field
}

// pointer6to4 maps a Parameter Problem pointer (RFC 7915 section 5.2, figure 6).
func pointer6to4(p uint32) (uint8, bool) {
	switch {
	case p <= 1:
		return uint8(p), true
	case p == 4 || p == 5:
		return 2, true // payload length -> total length
	case p == 6:
		return 9, true
	case p == 7:
		return 8, true
	case p >= 8 && p <= 23:
		return 12, true
	case p >= 24 && p <= 39:
		return 16, true
	}
	return 0, false // flow label: no IPv4 field
}

// inner4to6 translates the IPv4 packet inside an ICMPv4 error (RFC 7915
// section 4.3) into dst, cut to limit bytes. Its addresses map as usual
// (but for a hairpinned error its destination through the pool, as RFC 7757
// section 4.2.2 mapped it on the way out), its TTL is kept, and transport
// checksums move to the new pseudo-header.
func (k *compiled) inner4to6(dst, inner []byte, limit int, hairpin bool) (int, bool, Reason) {
	if len(inner) < header.IPv4MinLen {
		return 0, false, DropBadInner
	}
	h := header.IPv4(inner)
	ihl := h.IHL()
	if h.Version() != 4 || ihl < header.IPv4MinLen || len(inner) < ihl || h.TotalLen() < ihl {
		return 0, false, DropBadInner
	}
	iv := hdr6{tc: h.TOS(), hop: h.TTL(), proto: h.Protocol(), id: uint32(h.ID()), offset: h.FragOffset(), more: h.MF(), frag: h.IsFragment()}
	if !k.map4to6(iv.src[:], h.Src(), true) || !k.map4to6(iv.dst[:], h.Dst(), !hairpin) {
		return 0, false, DropBadInner
	}
	if iv.proto == header.ProtoICMP {
		// Section 4.3: only an Echo can be quoted; an ICMP error about an
		// ICMP error (or another untranslatable ICMP message) is dropped.
		if (!iv.frag || iv.offset == 0) && len(inner) > ihl && inner[ihl] != 0 && inner[ihl] != 8 {
			return 0, false, DropBadInner
		}
		iv.proto = header.ProtoICMPv6
	}
	declared := h.TotalLen() - ihl
	hl := iv.write(dst, declared)
	n := copy(dst[hl:limit], inner[ihl:])
	p := dst[hl : hl+n]
	if !iv.frag || iv.offset == 0 {
		switch iv.proto {
		case header.ProtoICMPv6:
			if len(p) >= 4 && (p[0] == 8 || p[0] == 0) {
				fixEchoChecksum(p, echo4to6(p[0]), header.PseudoSum(iv.src[:], iv.dst[:], header.ProtoICMPv6, declared), 0, false)
			}
		case header.ProtoTCP, header.ProtoUDP:
			innerChecksum(p, iv.proto, header.Sum(h.Dst(), header.Sum(h.Src(), 0)), header.Sum(iv.dst[:], header.Sum(iv.src[:], 0)))
		}
	}
	return hl + n, iv.frag, OK
}

// innerChecksum moves a (possibly truncated) inner TCP/UDP checksum to a
// new pseudo-header, when the field is inside the quoted bytes.
func innerChecksum(l4 []byte, proto uint8, oldSum, newSum uint64) {
	off := header.TCPChecksumOffset
	if proto == header.ProtoUDP {
		off = header.UDPChecksumOffset
	}
	if len(l4) < off+2 {
		return
	}
	f := binary.BigEndian.Uint16(l4[off:])
	if proto == header.ProtoUDP && f == 0 {
		return
	}
	binary.BigEndian.PutUint16(l4[off:], header.UpdateChecksum(f, oldSum, newSum))
}

// echo4to6 maps ICMPv4 Echo Request/Reply (8/0) to ICMPv6 (128/129).
func echo4to6(t uint8) uint8 {
	if t == 8 {
		return 128
	}
	return 129
}

// echo6to4 maps ICMPv6 Echo Request/Reply (128/129) to ICMPv4 (8/0).
func echo6to4(t uint8) uint8 {
	if t == 128 {
		return 8
	}
	return 0
}

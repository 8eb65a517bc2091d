package siit

import (
	"encoding/binary"
	"time"

	"github.com/gluon-464xlat/gluon-464xlat/header"
)

// The ICMP errors a translator originates are rate-limited: a token
// bucket of errorBurst, refilled at errorsPerSecond (Linux's default
// icmp_msgs_per_sec and burst). RFC 4443 section 2.4 (f) requires a limit
// for ICMPv6 errors, RFC 1812 section 4.3.2.8 asks one for ICMPv4; a flood
// of expiring or unmappable packets must not become a flood of errors.
const (
	errorsPerSecond = 1000
	errorBurst      = 50
)

// allowError takes a token from the error bucket, or counts a suppressed
// error. The clock is read only on this path, never per translated packet.
func (t *Translator) allowError() bool {
	now := time.Now()
	if t.errTokens < errorBurst {
		t.errTokens = min(errorBurst, t.errTokens+now.Sub(t.errRefill).Seconds()*errorsPerSecond)
	}
	t.errRefill = now
	if t.errTokens < 1 {
		t.Stats.ICMPErrorsLimited.Add(1)
		return false
	}
	t.errTokens--
	return true
}

// originate4 sends an ICMPv4 error of the translator's own (as the router it
// is, RFC 7915 section 4.1) back to the source of orig, from Addr4. No error
// answers an ICMP error, a non-first fragment or a special source (RFC 1812
// section 4.3.2.7).
func (t *Translator) originate4(k *compiled, orig []byte, typ, code uint8, param uint32, out *Batch) {
	h := header.IPv4(orig)
	ihl := h.IHL()
	if isSpecial4(h.Src()) || h.FragOffset() != 0 {
		return
	}
	if h.Protocol() == header.ProtoICMP && len(orig) > ihl && isICMPv4Error(orig[ihl]) {
		return
	}
	if !t.allowError() {
		return
	}
	b := t.scratch[Headroom:]
	m := b[header.IPv4MinLen:]
	n := copy(m[header.ICMPLen:maxICMPv4Error-header.IPv4MinLen], orig)
	m[0], m[1], m[2], m[3] = typ, code, 0, 0
	binary.BigEndian.PutUint32(m[4:], param)
	mlen := header.ICMPLen + n
	binary.BigEndian.PutUint16(m[2:], header.Checksum(m[:mlen], 0))
	v := hdr4{src: k.addr4, ttl: 64, proto: header.ProtoICMP, id: t.nextID()}
	copy(v.dst[:], h.Src())
	v.write(b, mlen)
	out.add(t.scratch, Headroom, header.IPv4MinLen+mlen, header.Offload{})
	t.Stats.ICMPErrors.Add(1)
}

// originate6 sends an ICMPv6 error of the translator's own back to the
// source of orig, from Addr6 (RFC 4443 section 2.4 (e) rules apply).
func (t *Translator) originate6(k *compiled, orig []byte, typ, code uint8, param uint32, out *Batch) {
	h := header.IPv6(orig)
	if isSpecial6(h.Src()) || k.addr6 == [16]byte{} {
		return
	}
	if h.NextHeader() == header.ProtoICMPv6 && len(orig) > header.IPv6Len && orig[header.IPv6Len] < 128 {
		return
	}
	if !t.allowError() {
		return
	}
	b := t.scratch[Headroom:]
	m := b[header.IPv6Len:]
	n := copy(m[header.ICMPLen:maxICMPv6Error-header.IPv6Len], orig)
	m[0], m[1], m[2], m[3] = typ, code, 0, 0
	binary.BigEndian.PutUint32(m[4:], param)
	mlen := header.ICMPLen + n
	v := hdr6{src: k.addr6, hop: 64, proto: header.ProtoICMPv6}
	copy(v.dst[:], h.Src())
	binary.BigEndian.PutUint16(m[2:], header.Checksum(m[:mlen], header.PseudoSum(v.src[:], v.dst[:], header.ProtoICMPv6, mlen)))
	v.write(b, mlen)
	out.add(t.scratch, Headroom, header.IPv6Len+mlen, header.Offload{})
	t.Stats.ICMPErrors.Add(1)
}

// isICMPv4Error reports the ICMPv4 error types (RFC 792, RFC 1812).
func isICMPv4Error(typ uint8) bool {
	switch typ {
	case 3, 4, 5, 11, 12:
		return true
	}
	return false
}

// fragment4to6 cuts an IPv4 payload into IPv6 fragments no larger than the
// lowest IPv6 MTU (RFC 7915 section 4 and 4.1 "Fragment Header"): the
// Identification is the IPv4 one, offsets continue those of an IPv4 fragment.
func (t *Translator) fragment4to6(k *compiled, v *hdr6, payload []byte, out *Batch) Reason {
	base, lastMore := v.offset, v.more
	v.frag = true
	r := t.fragment((k.fragMTU6-header.IPv6Len-header.IPv6FragLen)&^7, payload, out, func(b []byte, off, n int, last bool) int {
		v.offset, v.more = base+off, !last || lastMore
		return v.write(b, n)
	})
	if r == OK {
		t.Stats.Out4to6.Add(uint64(out.N))
	}
	return r
}

// fragment6to4 cuts an IPv4 payload into fragments that fit the IPv4 next
// hop (MTU4; RFC 7915 section 1.4): DF clear, the Identification of v,
// offsets continuing those of an IPv6 fragment.
func (t *Translator) fragment6to4(k *compiled, v *hdr4, payload []byte, out *Batch) Reason {
	base, lastMore := v.offset, v.more
	v.frag = true
	r := t.fragment((k.cfg.MTU4-header.IPv4MinLen)&^7, payload, out, func(b []byte, off, n int, last bool) int {
		v.offset, v.more = base+off, !last || lastMore
		v.write(b, n)
		return header.IPv4MinLen
	})
	if r == OK {
		t.Stats.Out6to4.Add(uint64(out.N))
	}
	return r
}

// fragment lays payload out in scratch in pieces of chunk bytes (a multiple
// of 8), each behind the header head writes for it (returning its length).
func (t *Translator) fragment(chunk int, payload []byte, out *Batch, head func(b []byte, off, n int, last bool) int) Reason {
	if chunk <= 0 || (len(payload)+chunk-1)/chunk > MaxOut {
		return DropTooBig
	}
	pos := 0
	for off := 0; off < len(payload); off += chunk {
		n := min(chunk, len(payload)-off)
		start := pos + Headroom
		hl := head(t.scratch[start:], off, n, off+n == len(payload))
		copy(t.scratch[start+hl:], payload[off:off+n])
		out.add(t.scratch, start, hl+n, header.Offload{})
		pos = start + hl + n
	}
	t.Stats.Fragments.Add(uint64(out.N))
	return OK
}

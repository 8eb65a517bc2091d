package siit

import (
	"encoding/binary"

	"github.com/gluon-464xlat/gluon-464xlat/header"
)

// fixTransport moves a TCP or UDP checksum to the translated pseudo-header
// (RFC 7915 sections 4.5 and 5.5). Length and protocol are the same on both
// sides, only the addresses differ, so the update is incremental over the
// old and new addresses. A SYN's MSS is clamped on the way. A zero UDP
// checksum is left alone and reported.
func fixTransport(l4 []byte, proto uint8, oldSrc, oldDst, newSrc, newDst []byte, partial bool, maxMSS int) (zeroUDP bool, r Reason) {
	off := header.TCPChecksumOffset
	if proto == header.ProtoUDP {
		off = header.UDPChecksumOffset
	}
	if len(l4) < off+2 {
		return false, DropTruncated
	}
	oldSum := header.Sum(oldDst, header.Sum(oldSrc, 0))
	newSum := header.Sum(newDst, header.Sum(newSrc, 0))
	if proto == header.ProtoTCP && maxMSS > 0 {
		if o, n := clampMSS(l4, maxMSS); !partial {
			// A partial checksum covers no data yet: only full ones change.
			oldSum, newSum = oldSum+o, newSum+n
		}
	}
	field := binary.BigEndian.Uint16(l4[off:])
	switch {
	case partial:
		field = header.UpdatePartial(field, oldSum, newSum)
	case proto == header.ProtoUDP && field == 0:
		return true, OK
	default:
		field = header.UpdateChecksum(field, oldSum, newSum)
		if proto == header.ProtoUDP && field == 0 {
			field = 0xffff // zero means "no checksum" in UDP
		}
	}
	binary.BigEndian.PutUint16(l4[off:], field)
	return false, OK
}

// fixTransport4to6 is fixTransport plus section 4.5's rule for a zero IPv4
// UDP checksum: computed when the whole datagram is here, else dropped.
func (t *Translator) fixTransport4to6(k *compiled, pkt []byte, ihl int, v *hdr6, partial, isFrag bool) Reason {
	maxMSS := k.cfg.MaxMSS
	if isFrag {
		maxMSS = 0 // a SYN is never fragmented in practice; leave fragments alone
	}
	h, l4 := header.IPv4(pkt), pkt[ihl:]
	zero, r := fixTransport(l4, v.proto, h.Src(), h.Dst(), v.src[:], v.dst[:], partial, maxMSS)
	if r != OK || !zero {
		return r
	}
	if isFrag || k.cfg.DropZeroUDPChecksum {
		return DropUDPZeroChecksum
	}
	c := header.Checksum(l4, header.PseudoSum(v.src[:], v.dst[:], header.ProtoUDP, len(l4)))
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(l4[header.UDPChecksumOffset:], c)
	return OK
}

// clampMSS lowers the MSS option of a TCP SYN to max and returns the sums of
// the old and new 16-bit word for the caller's checksum update.
func clampMSS(tcp []byte, max int) (oldSum, newSum uint64) {
	if len(tcp) < header.TCPMinLen || tcp[13]&0x02 == 0 {
		return 0, 0
	}
	doff := int(tcp[12]>>4) * 4
	if doff < header.TCPMinLen || doff > len(tcp) {
		return 0, 0
	}
	for i := header.TCPMinLen; i < doff; {
		switch tcp[i] {
		case 0:
			return 0, 0
		case 1:
			i++
			continue
		}
		if i+1 >= doff || tcp[i+1] < 2 {
			return 0, 0
		}
		l := int(tcp[i+1])
		if tcp[i] == 2 && l == 4 && i+4 <= doff {
			old := binary.BigEndian.Uint16(tcp[i+2:])
			if int(old) <= max {
				return 0, 0
			}
			binary.BigEndian.PutUint16(tcp[i+2:], uint16(max))
			o, n := uint64(old), uint64(max)
			if (i+2)%2 == 1 { // an odd offset sums byte-swapped
				o, n = uint64(old>>8|old<<8), uint64(uint16(max)>>8|uint16(max)<<8)
			}
			return o, n
		}
		i += l
	}
	return 0, 0
}

// Package header gives typed, zero-copy views over IPv4, IPv6, ICMP, TCP and
// UDP headers held in byte slices, and the Internet checksum helpers the
// translator needs. Nothing here allocates; callers check lengths first.
package header

import "encoding/binary"

// Protocol numbers used by the translator.
const (
	ProtoICMP     = 1
	ProtoTCP      = 6
	ProtoUDP      = 17
	ProtoIPv6Frag = 44
	ProtoICMPv6   = 58
	ProtoHopOpts  = 0
	ProtoRouting  = 43
	ProtoDstOpts  = 60
	ProtoNoNext   = 59
)

// Header sizes.
const (
	IPv4MinLen     = 20
	IPv6Len        = 40
	IPv6FragLen    = 8
	UDPLen         = 8
	TCPMinLen      = 20
	ICMPLen        = 8
	IPv4MaxTotal   = 65535
	IPv6MinMTU     = 1280
	IPv4MinMTU     = 68
	ipv4FlagDF     = 0x4000
	ipv4FlagMF     = 0x2000
	ipv4OffsetMask = 0x1fff
)

// IPv4 is a view of an IPv4 header (and what follows it).
type IPv4 []byte

func (h IPv4) Version() uint8  { return h[0] >> 4 }
func (h IPv4) IHL() int        { return int(h[0]&0x0f) * 4 }
func (h IPv4) TOS() uint8      { return h[1] }
func (h IPv4) TotalLen() int   { return int(binary.BigEndian.Uint16(h[2:])) }
func (h IPv4) ID() uint16      { return binary.BigEndian.Uint16(h[4:]) }
func (h IPv4) DF() bool        { return binary.BigEndian.Uint16(h[6:])&ipv4FlagDF != 0 }
func (h IPv4) MF() bool        { return binary.BigEndian.Uint16(h[6:])&ipv4FlagMF != 0 }
func (h IPv4) FragOffset() int { return int(binary.BigEndian.Uint16(h[6:])&ipv4OffsetMask) * 8 }
func (h IPv4) IsFragment() bool {
	return binary.BigEndian.Uint16(h[6:])&(ipv4FlagMF|ipv4OffsetMask) != 0
}
func (h IPv4) TTL() uint8          { return h[8] }
func (h IPv4) Protocol() uint8     { return h[9] }
func (h IPv4) Checksum() uint16    { return binary.BigEndian.Uint16(h[10:]) }
func (h IPv4) Src() []byte         { return h[12:16] }
func (h IPv4) Dst() []byte         { return h[16:20] }
func (h IPv4) SetTotalLen(n int)   { binary.BigEndian.PutUint16(h[2:], uint16(n)) }
func (h IPv4) SetID(id uint16)     { binary.BigEndian.PutUint16(h[4:], id) }
func (h IPv4) SetTTL(t uint8)      { h[8] = t }
func (h IPv4) SetProtocol(p uint8) { h[9] = p }

// SetFlagsOffset writes the DF and MF flags and the fragment offset (bytes).
func (h IPv4) SetFlagsOffset(df, mf bool, offset int) {
	v := uint16(offset/8) & ipv4OffsetMask
	if df {
		v |= ipv4FlagDF
	}
	if mf {
		v |= ipv4FlagMF
	}
	binary.BigEndian.PutUint16(h[6:], v)
}

// SetChecksum computes and stores the header checksum of an IHL-sized header.
func (h IPv4) SetChecksum() {
	h[10], h[11] = 0, 0
	binary.BigEndian.PutUint16(h[10:], ^Fold(Sum(h[:h.IHL()], 0)))
}

// IPv6 is a view of an IPv6 fixed header (and what follows it).
type IPv6 []byte

func (h IPv6) Version() uint8 { return h[0] >> 4 }
func (h IPv6) TrafficClass() uint8 {
	return uint8(binary.BigEndian.Uint16(h[0:]) >> 4)
}
func (h IPv6) FlowLabel() uint32    { return binary.BigEndian.Uint32(h[0:]) & 0xfffff }
func (h IPv6) PayloadLen() int      { return int(binary.BigEndian.Uint16(h[4:])) }
func (h IPv6) NextHeader() uint8    { return h[6] }
func (h IPv6) HopLimit() uint8      { return h[7] }
func (h IPv6) Src() []byte          { return h[8:24] }
func (h IPv6) Dst() []byte          { return h[24:40] }
func (h IPv6) SetPayloadLen(n int)  { binary.BigEndian.PutUint16(h[4:], uint16(n)) }
func (h IPv6) SetNextHeader(p byte) { h[6] = p }
func (h IPv6) SetHopLimit(l uint8)  { h[7] = l }

// SetVersionClassFlow writes version 6, the traffic class and the flow label.
func (h IPv6) SetVersionClassFlow(tc uint8, flow uint32) {
	binary.BigEndian.PutUint32(h[0:], 6<<28|uint32(tc)<<20|flow&0xfffff)
}

// IPv6Frag is a view of an IPv6 Fragment extension header.
type IPv6Frag []byte

func (f IPv6Frag) NextHeader() uint8 { return f[0] }
func (f IPv6Frag) Offset() int       { return int(binary.BigEndian.Uint16(f[2:]) &^ 7) }
func (f IPv6Frag) More() bool        { return f[3]&1 != 0 }
func (f IPv6Frag) ID() uint32        { return binary.BigEndian.Uint32(f[4:]) }

// Set writes the whole fragment header.
func (f IPv6Frag) Set(next uint8, offset int, more bool, id uint32) {
	f[0], f[1] = next, 0
	v := uint16(offset) &^ 7
	if more {
		v |= 1
	}
	binary.BigEndian.PutUint16(f[2:], v)
	binary.BigEndian.PutUint32(f[4:], id)
}

// ICMP is a view of an ICMPv4 or ICMPv6 header (same layout for the first 8 bytes).
type ICMP []byte

func (h ICMP) Type() uint8            { return h[0] }
func (h ICMP) Code() uint8            { return h[1] }
func (h ICMP) Checksum() uint16       { return binary.BigEndian.Uint16(h[2:]) }
func (h ICMP) SetTypeCode(t, c uint8) { h[0], h[1] = t, c }
func (h ICMP) SetChecksum(c uint16)   { binary.BigEndian.PutUint16(h[2:], c) }

// Transport-header checksum offsets.
const (
	TCPChecksumOffset = 16
	UDPChecksumOffset = 6
	ICMPChecksumOff   = 2
)

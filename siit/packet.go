package siit

import (
	"encoding/json"
	"sync/atomic"

	"github.com/gluon-464xlat/gluon-464xlat/header"
)

// Headroom is the number of free bytes a caller must leave in front of a
// packet: 4->6 writes a larger header in place (IPv6 + Fragment header is
// up to 28 bytes longer than a bare IPv4 header), and the TUN layer puts its
// virtio-net header in front of that.
const Headroom = 64

// minStart is the least offset an in-place result may start at, leaving room
// for a virtio-net header (12 bytes with num_buffers).
const minStart = 12

// MaxOut bounds the packets one input can produce: a 64 KiB IPv4 packet
// without DF cut into 1280-byte IPv6 fragments gives 54.
const MaxOut = 64

const scratchSize = 160 << 10

// hairpinRoom is scratch's tail, where a hairpinned ICMPv4 error waits for
// its way back to IPv6 (fragments, the longest use of scratch, end at about
// 54 * 1280 + Headroom).
const hairpinRoom = Headroom + maxICMPv4Error

// Packet is one IP packet at Buf[Start:Start+Len].
type Packet struct {
	Buf     []byte
	Start   int
	Len     int
	Offload header.Offload
}

// Bytes returns the packet.
func (p *Packet) Bytes() []byte { return p.Buf[p.Start : p.Start+p.Len] }

// Batch receives a translation's output without allocating.
type Batch struct {
	Pkts [MaxOut]Packet
	N    int
}

func (b *Batch) add(buf []byte, start, n int, o header.Offload) {
	b.Pkts[b.N] = Packet{Buf: buf, Start: start, Len: n, Offload: o}
	b.N++
}

// Reason says why a packet was not translated. Reason 0 (OK) means it was.
type Reason uint8

const (
	OK Reason = iota
	DropTruncated
	DropBadHeader
	DropBadLength
	DropBadChecksum
	DropTTLExpired
	DropUntranslatableSrc
	DropUntranslatableDst
	DropICMPType
	DropFragmentedICMP
	DropWrongICMPFamily
	DropUDPZeroChecksum
	DropSourceRoute
	DropRoutingHeader
	DropExtHeaders
	DropTooBig
	DropBadInner
	DropNoHeadroom
	DropRefusedDst
	DropMulticast
	numReasons
)

var reasonNames = [numReasons]string{
	OK:                    "ok",
	DropTruncated:         "truncated",
	DropBadHeader:         "bad_header",
	DropBadLength:         "bad_length",
	DropBadChecksum:       "bad_checksum",
	DropTTLExpired:        "ttl_expired",
	DropUntranslatableSrc: "untranslatable_src",
	DropUntranslatableDst: "untranslatable_dst",
	DropICMPType:          "icmp_untranslatable",
	DropFragmentedICMP:    "fragmented_icmp",
	DropWrongICMPFamily:   "icmp_wrong_family",
	DropUDPZeroChecksum:   "udp_zero_checksum",
	DropSourceRoute:       "source_route",
	DropRoutingHeader:     "routing_header",
	DropExtHeaders:        "ext_headers",
	DropTooBig:            "too_big",
	DropBadInner:          "bad_inner_packet",
	DropNoHeadroom:        "no_headroom",
	DropRefusedDst:        "refused_destination",
	DropMulticast:         "multicast",
}

func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Stats counts what a Translator did. Counters are atomic so that a status
// reader on another goroutine sees consistent values.
type Stats struct {
	Out4to6    atomic.Uint64 // packets emitted towards IPv6
	Out6to4    atomic.Uint64 // packets emitted towards IPv4
	ICMPErrors atomic.Uint64 // ICMP errors the translator originated
	// ICMP errors not sent: over the rate limit (RFC 4443 section 2.4 (f))
	ICMPErrorsLimited atomic.Uint64
	Fragments         atomic.Uint64 // fragments it produced
	GSO               atomic.Uint64 // offloaded super-packets translated whole
	// packets turned back to IPv6 (RFC 7757 section 4.2.2); each also
	// counts in Out6to4 and Out4to6
	Hairpinned atomic.Uint64
	Drops      [numReasons]atomic.Uint64
}

// Snapshot is a plain copy of Stats, summable and JSON-friendly.
type Snapshot struct {
	Out4to6    uint64            `json:"out_4to6"`
	Out6to4    uint64            `json:"out_6to4"`
	ICMPErrors uint64            `json:"icmp_errors_sent"`
	Limited    uint64            `json:"icmp_errors_rate_limited"`
	Fragments  uint64            `json:"fragments_made"`
	GSO        uint64            `json:"gso_packets"`
	Hairpinned uint64            `json:"hairpinned"`
	Drops      map[string]uint64 `json:"drops"`
}

// Add adds s into the snapshot.
func (n *Snapshot) Add(s *Stats) {
	n.Out4to6 += s.Out4to6.Load()
	n.Out6to4 += s.Out6to4.Load()
	n.ICMPErrors += s.ICMPErrors.Load()
	n.Limited += s.ICMPErrorsLimited.Load()
	n.Fragments += s.Fragments.Load()
	n.GSO += s.GSO.Load()
	n.Hairpinned += s.Hairpinned.Load()
	if n.Drops == nil {
		n.Drops = map[string]uint64{}
	}
	for r := Reason(1); r < numReasons; r++ {
		if v := s.Drops[r].Load(); v > 0 {
			n.Drops[r.String()] += v
		}
	}
}

// TotalDrops sums the drop counters.
func (n *Snapshot) TotalDrops() uint64 {
	var t uint64
	for _, v := range n.Drops {
		t += v
	}
	return t
}

func (n Snapshot) String() string { b, _ := json.Marshal(n); return string(b) }

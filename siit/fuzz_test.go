package siit

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/gluon-464xlat/gluon-464xlat/header"
)

// fixInputChecksums makes a fuzz input's checksums right where it parses, so
// the invariant "every emitted packet has correct checksums" is about the
// translator, not about the fuzzer's garbage.
func fixInputChecksums(b []byte) {
	if len(b) < 1 {
		return
	}
	switch b[0] >> 4 {
	case 4:
		h := header.IPv4(b)
		if len(b) < 20 || h.IHL() < 20 || h.IHL() > len(b) || h.TotalLen() > len(b) || h.TotalLen() < h.IHL() {
			return
		}
		h.SetChecksum()
		if !h.IsFragment() {
			fixL4(b[h.IHL():h.TotalLen()], h.Protocol(), h.Src(), h.Dst(), false)
		}
	case 6:
		h := header.IPv6(b)
		if len(b) < 40 || 40+h.PayloadLen() > len(b) {
			return
		}
		pkt := b[:40+h.PayloadLen()]
		e, r := walkExt6(pkt, false)
		if r != OK || e.frag || e.l4 > len(pkt) {
			return
		}
		fixL4(pkt[e.l4:], e.proto, h.Src(), h.Dst(), true)
	}
}

func fixL4(l4 []byte, proto uint8, src, dst []byte, v6 bool) {
	off := -1
	var pseudo uint64
	switch proto {
	case header.ProtoTCP:
		off, pseudo = 16, header.PseudoSum(src, dst, proto, len(l4))
	case header.ProtoUDP:
		off, pseudo = 6, header.PseudoSum(src, dst, proto, len(l4))
		if !v6 && len(l4) >= 8 && binary.BigEndian.Uint16(l4[6:]) == 0 {
			return // keep "no checksum" inputs: the translator must compute it
		}
	case header.ProtoICMP:
		off = 2
	case header.ProtoICMPv6:
		off, pseudo = 2, header.PseudoSum(src, dst, proto, len(l4))
	}
	if off < 0 || len(l4) < off+2 {
		return
	}
	binary.BigEndian.PutUint16(l4[off:], 0)
	c := header.Checksum(l4, pseudo)
	if proto == header.ProtoUDP && c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(l4[off:], c)
}

func fuzzOne(t *testing.T, tr *Translator, data []byte, o header.Offload) {
	pkt := append([]byte(nil), data...)
	fixInputChecksums(pkt)
	buf := make([]byte, Headroom+len(pkt))
	copy(buf[Headroom:], pkt)
	var out Batch
	r := tr.Translate(&Packet{Buf: buf, Start: Headroom, Len: len(pkt), Offload: o}, &out)
	if r >= numReasons {
		t.Fatalf("reason %d out of range", r)
	}
	for i := 0; i < out.N; i++ {
		p := out.Pkts[i]
		if p.Start < minStart || p.Start+p.Len > len(p.Buf) {
			t.Fatalf("output %d outside its buffer", i)
		}
		if o.NeedsCsum && p.Offload.NeedsCsum {
			continue // checksum finished by the kernel; lengths checked below
		}
		if msg := packetProblem(p.Bytes()); msg != "" {
			t.Fatalf("output %d: %s\nin  % x\nout % x", i, msg, pkt, p.Bytes())
		}
	}
}

func seeds(f *testing.F, v4 bool) {
	// every input of the conformance corpus of that family
	if js, err := os.ReadFile(corpusFile); err == nil {
		var cases []confCase
		json.Unmarshal(js, &cases)
		for _, c := range cases {
			if in, err := hex.DecodeString(c.In); err == nil && len(in) > 0 && (in[0]>>4 == 4) == v4 {
				f.Add(in)
			}
		}
	}
	if v4 {
		f.Add(build(f, ip4(layers.IPProtocolUDP, client4, server4), &layers.UDP{SrcPort: 1, DstPort: 2}, payloadOf(20)))
		f.Add(build(f, ip4(layers.IPProtocolTCP, client4, server4), &layers.TCP{SrcPort: 1, DstPort: 2, SYN: true}, payloadOf(0)))
		for _, tc := range [][2]uint8{{8, 0}, {3, 3}, {3, 4}, {11, 0}, {12, 0}} {
			f.Add(icmp4Packet(f, tc[0], tc[1], 0))
		}
		return
	}
	f.Add(build(f, ip6(layers.IPProtocolUDP, server6, client6), &layers.UDP{SrcPort: 1, DstPort: 2}, payloadOf(20)))
	f.Add(build(f, ip6(layers.IPProtocolTCP, server6, client6), &layers.TCP{SrcPort: 1, DstPort: 2, SYN: true}, payloadOf(0)))
	for _, tc := range [][2]uint8{{128, 0}, {1, 4}, {2, 0}, {3, 0}, {4, 0}} {
		f.Add(icmp6Packet(f, tc[0], tc[1], 1280, 200))
	}
}

// fuzzTranslators are the configurations every fuzz input goes through:
// the CLAT's; one with small next-hop MTUs on both sides and an MSS clamp,
// so the PMTU, fragmentation and clamping paths see garbage too; and RFC
// 7757 Appendix B's EAM table (suffixes of unequal length, hairpinning).
func fuzzTranslators(f *testing.F) []*Translator {
	small := testConfig(f)
	small.MTU4, small.MTU6, small.MaxMSS = 576, 1280, 1000
	trSmall, err := New(small)
	if err != nil {
		f.Fatal(err)
	}
	trEAM, err := New(corpusConfig(f, "rfc7757"))
	if err != nil {
		f.Fatal(err)
	}
	return []*Translator{newT(f), trSmall, trEAM}
}

// fuzzOffloads are the TUN offload flags an input is also tried with: as
// the kernel hands over a packet whose checksum it has left to finish, and
// a TCP super-packet (garbage or not, the translator must cope).
func fuzzOffloads(gso uint8) []header.Offload {
	return []header.Offload{{}, {NeedsCsum: true}, {GSOType: gso, GSOSize: 536, NeedsCsum: true}}
}

// FuzzTranslate4to6: no panic; emitted packets have consistent lengths and
// correct checksums (where none is left to the kernel), in every
// configuration and with every offload.
func FuzzTranslate4to6(f *testing.F) {
	seeds(f, true)
	trs := fuzzTranslators(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 0 {
			data[0] = 0x40 | data[0]&0x0f
		}
		for _, tr := range trs {
			for _, o := range fuzzOffloads(header.GSOTCPv4) {
				fuzzOne(t, tr, data, o)
			}
		}
	})
}

// FuzzTranslate6to4: the same invariants the other way.
func FuzzTranslate6to4(f *testing.F) {
	seeds(f, false)
	trs := fuzzTranslators(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 0 {
			data[0] = 0x60 | data[0]&0x0f
		}
		for _, tr := range trs {
			for _, o := range fuzzOffloads(header.GSOTCPv6) {
				fuzzOne(t, tr, data, o)
			}
		}
	})
}

package siit

// The conformance corpus: packet pairs written from the RFCs' text, each an
// input, the configuration it is translated with, and the packets that
// must come out (none for a drop). The expected packets are built here by
// a model of the RFC rules with gopacket, never by the translator, and
// stored in testdata/conformance/cases.json; TestConformanceCorpus replays
// the file against the library (e2e replays the CLAT cases against a
// running clatd). Regenerate after changing the model:
//
//	go test ./siit -run TestConformanceCorpus -update-corpus
//
// Where the RFCs leave a choice (MAY, SHOULD), the model says which one this
// translator makes, next to the rule.

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gluon-464xlat/gluon-464xlat/header"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/conformance/cases.json from the model")

const corpusFile = "testdata/conformance/cases.json"

// rfc7757Pool is the RFC 6052 prefix (/40) next to RFC 7757 Appendix B's
// EAM table in the "rfc7757" configuration.
const rfc7757Pool = "2001:db8:100::"

// confCase is one pair of the corpus.
type confCase struct {
	Name   string   `json:"name"`
	RFC    string   `json:"rfc"`
	Config string   `json:"config"`
	In     string   `json:"in"`
	Out    []string `json:"out"`
}

// corpusConfigs are the translator configurations the corpus names.
func corpusConfig(t testing.TB, name string) Config {
	t.Helper()
	switch name {
	case "clat": // DESIGN.md's CLAT as clatd runs it by default: client EAM, PLAT /96, -mtu 1500, MSS clamp
		c := testConfig(t)
		c.MTU6, c.MaxMSS = 1500, 1440
		return c
	case "clat-mtu": // the same with known next-hop MTUs
		c := testConfig(t)
		c.MTU4, c.MTU6 = 1400, 1400
		return c
	case "wkp":
		p, _ := ParsePrefix6052("64:ff9b::/96")
		return Config{Pool6: p}
	case "eam2": // two overlapping EAMs and a pool
		c := testConfig(t)
		a, _ := NewEAM(netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8:100::/120"))
		b, _ := NewEAM(netip.MustParsePrefix("192.0.2.128/25"), netip.MustParsePrefix("2001:db8:200::/121"))
		c.EAMs = append(c.EAMs, a, b)
		return c
	}
	if name == "rfc7757" {
		// RFC 7757 Appendix B's EAM table; pool /40.
		p, _ := ParsePrefix6052(rfc7757Pool + "/40")
		c := Config{Pool6: p, Addr6: netip.MustParseAddr("2001:db8::64")}
		for _, e := range modelFor(name).eams {
			eam, err := NewEAM(netip.PrefixFrom(netip.AddrFrom4([4]byte(e.v4.To4())), e.v4bits), netip.PrefixFrom(netip.AddrFrom16([16]byte(e.v6.To16())), e.v6bits))
			if err != nil {
				t.Fatal(err)
			}
			c.EAMs = append(c.EAMs, eam)
		}
		return c
	}
	for _, l := range []int{32, 40, 48, 56, 64, 96} {
		if name == fmt.Sprintf("nsp%d", l) {
			p, _ := NewPrefix6052(netip.PrefixFrom(netip.MustParseAddr("2001:db8:aaaa:bbbb:cccc:dddd::"), l))
			return Config{Pool6: p, Addr6: netip.MustParseAddr("2001:db8::64")}
		}
	}
	t.Fatalf("no corpus config %q", name)
	return Config{}
}

// The model's address mapping, written from the RFCs rather than taken
// from the translator: RFC 7757 EAMs (longest match) before the RFC 6052
// prefix, whose u octet (bits 64-71) stays zero.
func modelEmbed(prefix net.IP, bits int, v4 net.IP) net.IP {
	a := append(net.IP(nil), prefix.To16()...)
	for i := bits / 8; i < 16; i++ {
		a[i] = 0
	}
	j := 0
	for i := bits / 8; j < 4; i++ {
		if i == 8 {
			continue // u octet
		}
		a[i] = v4.To4()[j]
		j++
	}
	return a
}

type modelEAM struct {
	v4     net.IP
	v4bits int
	v6     net.IP
	v6bits int
}

type model struct {
	pool     net.IP
	poolBits int
	eams     []modelEAM
	addr4    net.IP // the translator's own IPv4 (RFC 7335 192.0.0.2)
	addr6    net.IP
}

func modelFor(name string) model {
	switch name {
	case "clat", "clat-mtu":
		return model{pool: net.ParseIP("fddd:1337:1338:1234:5678:9abc::"), poolBits: 96,
			eams:  []modelEAM{{net.IPv4(10, 130, 0, 0), 16, net.ParseIP("fddd:1337:1337:1234:5678:9abc:a82:0"), 112}},
			addr4: net.IPv4(192, 0, 0, 2), addr6: addr6own.AsSlice()}
	case "wkp":
		return model{pool: net.ParseIP("64:ff9b::"), poolBits: 96, addr4: net.IPv4(192, 0, 0, 2), addr6: net.ParseIP("64:ff9b::c000:2")}
	case "eam2":
		m := modelFor("clat")
		m.eams = append(m.eams, modelEAM{net.IPv4(192, 0, 2, 0), 24, net.ParseIP("2001:db8:100::"), 120},
			modelEAM{net.IPv4(192, 0, 2, 128), 25, net.ParseIP("2001:db8:200::"), 121})
		return m
	}
	if name == "rfc7757" {
		e := func(v4 string, b4 int, v6 string, b6 int) modelEAM {
			return modelEAM{net.ParseIP(v4), b4, net.ParseIP(v6), b6}
		}
		return model{pool: net.ParseIP(rfc7757Pool), poolBits: 40, addr4: net.IPv4(192, 0, 0, 2), addr6: net.ParseIP("2001:db8::64"),
			eams: []modelEAM{
				e("192.0.2.1", 32, "2001:db8:aaaa::", 128),
				e("192.0.2.2", 32, "2001:db8:bbbb::b", 128),
				e("192.0.2.16", 28, "2001:db8:cccc::", 124),
				e("192.0.2.128", 26, "2001:db8:dddd::", 64), // IPv6 suffix longer than IPv4's
				e("192.0.2.192", 29, "2001:db8:eeee:8::", 62),
				e("192.0.2.224", 31, "64:ff9b::", 127),
			}}
	}
	var l int
	fmt.Sscanf(name, "nsp%d", &l)
	return model{pool: net.ParseIP("2001:db8:aaaa:bbbb:cccc:dddd::"), poolBits: l, addr4: net.IPv4(192, 0, 0, 2), addr6: net.ParseIP("2001:db8::64")}
}

func (m model) to6(v4 net.IP) net.IP {
	best := -1
	for i, e := range m.eams {
		if netip.PrefixFrom(netip.AddrFrom4([4]byte(e.v4.To4())), e.v4bits).Contains(netip.AddrFrom4([4]byte(v4.To4()))) && (best < 0 || e.v4bits > m.eams[best].v4bits) {
			best = i
		}
	}
	if best >= 0 {
		// RFC 7757 section 3.2: the IPv4 suffix follows the IPv6 prefix;
		// what is left of a longer IPv6 suffix is zero.
		e := m.eams[best]
		a := new(big.Int).SetBytes(e.v6.To16())
		host := uint64(binary.BigEndian.Uint32(v4.To4())) & (1<<(32-e.v4bits) - 1)
		a.Or(a, new(big.Int).Lsh(new(big.Int).SetUint64(host), uint(128-e.v6bits-(32-e.v4bits))))
		return a.FillBytes(make(net.IP, 16))
	}
	return modelEmbed(m.pool, m.poolBits, v4)
}

// model packets -------------------------------------------------------

// l4 is a transport payload the model builds in both families.
type l4 struct {
	proto   string // udp, tcp, echo, reply
	payload int
}

func (x l4) layers4() []gopacket.SerializableLayer {
	switch x.proto {
	case "udp":
		return []gopacket.SerializableLayer{&layers.UDP{SrcPort: 4000, DstPort: 53}, payloadOf(x.payload)}
	case "tcp":
		return []gopacket.SerializableLayer{&layers.TCP{SrcPort: 4000, DstPort: 80, Seq: 1, Ack: 2, ACK: true, Window: 512}, payloadOf(x.payload)}
	}
	typ := uint8(8)
	if x.proto == "reply" {
		typ = 0
	}
	return []gopacket.SerializableLayer{&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, 0), Id: 7, Seq: 9}, payloadOf(x.payload)}
}

func (x l4) layers6() []gopacket.SerializableLayer {
	switch x.proto {
	case "udp", "tcp":
		return x.layers4()
	}
	typ := uint8(128)
	if x.proto == "reply" {
		typ = 129
	}
	return []gopacket.SerializableLayer{&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, 0)}, &layers.ICMPv6Echo{Identifier: 7, SeqNumber: 9}, payloadOf(x.payload)}
}

func (x l4) ipProto(v6 bool) layers.IPProtocol {
	switch x.proto {
	case "udp":
		return layers.IPProtocolUDP
	case "tcp":
		return layers.IPProtocolTCP
	}
	if v6 {
		return layers.IPProtocolICMPv6
	}
	return layers.IPProtocolICMPv4
}

func v4pkt(t testing.TB, src, dst net.IP, tos, ttl uint8, df bool, x l4) []byte {
	h := &layers.IPv4{Version: 4, IHL: 5, TOS: tos, TTL: ttl, Id: 0x4242, Protocol: x.ipProto(false), SrcIP: src.To4(), DstIP: dst.To4()}
	if df {
		h.Flags = layers.IPv4DontFragment
	}
	return build(t, append([]gopacket.SerializableLayer{h}, x.layers4()...)...)
}

func v6pkt(t testing.TB, src, dst net.IP, tc, hop uint8, x l4) []byte {
	h := &layers.IPv6{Version: 6, TrafficClass: tc, HopLimit: hop, NextHeader: x.ipProto(true), SrcIP: src, DstIP: dst}
	return build(t, append([]gopacket.SerializableLayer{h}, x.layers6()...)...)
}

// icmp4Err is an ICMPv4 error message (checksum computed) around quote.
func icmp4Err(typ, code uint8, rest uint32, quote []byte) []byte {
	m := make([]byte, 8, 8+len(quote))
	m[0], m[1] = typ, code
	binary.BigEndian.PutUint32(m[4:], rest)
	m = append(m, quote...)
	binary.BigEndian.PutUint16(m[2:], header.Checksum(m, 0))
	return m
}

// icmp6Err is an ICMPv6 message (checksum over the pseudo-header) around quote.
func icmp6Err(src, dst net.IP, typ, code uint8, rest uint32, quote []byte) []byte {
	m := make([]byte, 8, 8+len(quote))
	m[0], m[1] = typ, code
	binary.BigEndian.PutUint32(m[4:], rest)
	m = append(m, quote...)
	binary.BigEndian.PutUint16(m[2:], header.Checksum(m, header.PseudoSum(src.To16(), dst.To16(), header.ProtoICMPv6, len(m))))
	return m
}

func withV4(t testing.TB, src, dst net.IP, tos, ttl uint8, df bool, proto layers.IPProtocol, msg []byte) []byte {
	h := &layers.IPv4{Version: 4, IHL: 5, TOS: tos, TTL: ttl, Protocol: proto, SrcIP: src.To4(), DstIP: dst.To4()}
	if df {
		h.Flags = layers.IPv4DontFragment
	}
	return build(t, h, gopacket.Payload(msg))
}

func withV6(t testing.TB, src, dst net.IP, tc, hop uint8, msg []byte) []byte {
	return build(t, &layers.IPv6{Version: 6, TrafficClass: tc, HopLimit: hop, NextHeader: layers.IPProtocolICMPv6, SrcIP: src, DstIP: dst}, gopacket.Payload(msg))
}

// corpus ---------------------------------------------------------------

type corpusBuilder struct {
	t     testing.TB
	cases []confCase
}

func (b *corpusBuilder) add(name, rfc, cfg string, in []byte, out ...[]byte) {
	c := confCase{Name: name, RFC: rfc, Config: cfg, In: hex.EncodeToString(in), Out: []string{}}
	for _, o := range out {
		c.Out = append(c.Out, hex.EncodeToString(o))
	}
	b.cases = append(b.cases, c)
}

func buildCorpus(t testing.TB) []confCase {
	b := &corpusBuilder{t: t}
	m := modelFor("clat")
	c4, s4 := client4, server4
	c6, s6 := m.to6(c4), m.to6(s4)
	x := map[string]l4{"udp": {"udp", 40}, "tcp": {"tcp", 40}, "echo": {"echo", 32}, "reply": {"reply", 32}}
	order := []string{"udp", "tcp", "echo", "reply"}

	// RFC 7915 section 4.1: every IPv6 field from its IPv4 one. Traffic
	// Class = TOS (the default of "copy"), Flow Label 0, Hop Limit = TTL - 1
	// (the translator is a router), Next Header = Protocol (ICMPv6 for
	// ICMP), addresses mapped; DF makes no difference below 1280 bytes.
	for _, p := range order {
		for _, tos := range []uint8{0, 0x28, 0xb9} {
			for _, ttl := range []uint8{64, 2} {
				for _, df := range []bool{true, false} {
					b.add(fmt.Sprintf("4to6 %s tos %#x ttl %d df %v", p, tos, ttl, df), "RFC 7915 4.1, 4.2 (echo), 4.5", "clat",
						v4pkt(t, c4, s4, tos, ttl, df, x[p]), v6pkt(t, c6, s6, tos, ttl-1, x[p]))
				}
			}
		}
	}
	// RFC 7915 section 5.1, the other way: TOS = Traffic Class, TTL = Hop
	// Limit - 1, DF set only above 1260 bytes of IPv4 (the translator's
	// Identification is not compared: section 5.1 lets it choose).
	for _, p := range order {
		for _, tc := range []uint8{0, 0x28, 0xb9} {
			for _, hop := range []uint8{64, 2} {
				b.add(fmt.Sprintf("6to4 %s tc %#x hop %d", p, tc, hop), "RFC 7915 5.1, 5.2 (echo), 5.5", "clat",
					v6pkt(t, s6, c6, tc, hop, x[p]), v4pkt(t, s4, c4, tc, hop-1, false, x[p]))
			}
		}
		big := x[p]
		big.payload = 1400
		b.add("6to4 "+p+" over 1260 bytes: DF", "RFC 7915 5.1 Flags", "clat",
			v6pkt(t, s6, c6, 0, 64, big), v4pkt(t, s4, c4, 0, 63, true, big))
	}

	// RFC 7915 section 4.1 Time to Live / RFC 792: TTL 1 expires here;
	// Time Exceeded from the translator's own 192.0.0.2 (RFC 7335), quoting
	// the datagram. Section 5.1, the same for Hop Limit 1 (RFC 4443 3.3).
	for _, ttl := range []uint8{1, 0} {
		in := v4pkt(t, c4, s4, 0, ttl, true, x["udp"])
		b.add(fmt.Sprintf("4to6 ttl %d expires", ttl), "RFC 7915 4.1 TTL, RFC 792", "clat", in,
			withV4(t, m.addr4, c4, 0, 64, false, layers.IPProtocolICMPv4, icmp4Err(11, 0, 0, in)))
	}
	for _, hop := range []uint8{1, 0} {
		in := v6pkt(t, s6, c6, 0, hop, x["udp"])
		b.add(fmt.Sprintf("6to4 hop limit %d expires", hop), "RFC 7915 5.1 Hop Limit, RFC 4443 3.3", "clat", in,
			withV6(t, m.addr6, s6, 0, 64, icmp6Err(m.addr6, s6, 3, 0, 0, in)))
	}

	b.icmp4Errors(m)
	b.icmp6Errors(m)
	b.addresses()
	b.eamTable()
	b.hairpinning()
	b.specials(m)
	return b.cases
}

// inner4 is the datagram an ICMPv4 error from the client quotes: UDP the
// server sent; inner6 is its translation (RFC 7915 section 4.3: TTL kept,
// checksum moved to the IPv6 pseudo-header, Payload Length as declared).
func (b *corpusBuilder) inner(m model) (in4, in6 []byte) {
	x := l4{"udp", 60}
	return v4pkt(b.t, server4, client4, 0, 50, false, x), v6pkt(b.t, m.to6(server4), m.to6(client4), 0, 50, x)
}

// icmp4Errors is RFC 7915 section 4.2's table for ICMPv4 errors, section
// 4.3 for what they quote, and 4.2's pointer and MTU rules.
func (b *corpusBuilder) icmp4Errors(m model) {
	t := b.t
	c6, s6 := m.to6(client4), m.to6(server4)
	in4, in6 := b.inner(m)
	type row struct {
		typ, code   uint8
		ntyp, ncode uint8
		param       uint32
		drop        bool
	}
	rows := []row{
		{3, 0, 1, 0, 0, false}, {3, 1, 1, 0, 0, false}, {3, 2, 4, 1, 6, false}, {3, 3, 1, 4, 0, false},
		{3, 5, 1, 0, 0, false}, {3, 6, 1, 0, 0, false}, {3, 7, 1, 0, 0, false}, {3, 8, 1, 0, 0, false},
		{3, 9, 1, 1, 0, false}, {3, 10, 1, 1, 0, false}, {3, 11, 1, 0, 0, false}, {3, 12, 1, 0, 0, false},
		{3, 13, 1, 1, 0, false}, {3, 14, 0, 0, 0, true}, {3, 15, 1, 1, 0, false},
		{11, 0, 3, 0, 0, false}, {11, 1, 3, 1, 0, false},
		{12, 1, 0, 0, 0, true},
		{4, 0, 0, 0, 0, true}, {5, 0, 0, 0, 0, true}, {5, 1, 0, 0, 0, true},
	}
	for _, r := range rows {
		in := withV4(t, client4, server4, 0, 64, false, layers.IPProtocolICMPv4, icmp4Err(r.typ, r.code, 0, in4))
		name := fmt.Sprintf("4to6 icmp error %d/%d", r.typ, r.code)
		if r.drop {
			b.add(name+" dropped", "RFC 7915 4.2", "clat", in)
			continue
		}
		b.add(fmt.Sprintf("%s -> %d/%d", name, r.ntyp, r.ncode), "RFC 7915 4.2, 4.3", "clat", in,
			withV6(t, c6, s6, 0, 63, icmp6Err(c6, s6, r.ntyp, r.ncode, r.param, in6)))
	}
	// Informational types other than Echo are single-hop or obsolete: dropped.
	for _, typ := range []uint8{9, 10, 13, 14, 15, 16, 17, 18, 6, 30, 253} {
		msg := icmp4Err(typ, 0, 0, []byte("informational"))
		b.add(fmt.Sprintf("4to6 icmp type %d dropped", typ), "RFC 7915 4.2", "clat", withV4(t, client4, server4, 0, 64, false, layers.IPProtocolICMPv4, msg))
	}
	// Parameter Problem (12/0 and 12/2): the pointer moves to the field's
	// place in the IPv6 header (section 4.2's figure); fields without one drop.
	ptrs := map[uint8]int{0: 0, 1: 1, 2: 4, 3: 4, 4: -1, 5: -1, 6: -1, 7: -1, 8: 7, 9: 6, 10: -1, 11: -1, 12: 8, 13: 8, 14: 8, 15: 8, 16: 24, 19: 24}
	for _, code := range []uint8{0, 2} {
		for p := uint8(0); p < 20; p++ {
			n, ok := ptrs[p]
			if !ok {
				continue
			}
			in := withV4(t, client4, server4, 0, 64, false, layers.IPProtocolICMPv4, icmp4Err(12, code, uint32(p)<<24, in4))
			name := fmt.Sprintf("4to6 parameter problem 12/%d pointer %d", code, p)
			if n < 0 {
				b.add(name+" dropped", "RFC 7915 4.2 Parameter Problem", "clat", in)
				continue
			}
			b.add(fmt.Sprintf("%s -> 4/0 pointer %d", name, n), "RFC 7915 4.2 Parameter Problem", "clat", in,
				withV6(t, c6, s6, 0, 63, icmp6Err(c6, s6, 4, 0, uint32(n), in6)))
		}
	}
	// Fragmentation Needed: MTU + 20 (IPv6 header 20 bytes longer), within
	// the IPv6 next hop's MTU (1500 here); a zero MTU (pre-RFC 1191 router)
	// takes the plateau below the quoted total length (RFC 1191 section 5);
	// this translator never says less than 1280 (an IPv6 host ignores less,
	// RFC 8201 section 4), a choice.
	for _, mtu := range []uint16{1400, 1500, 1260, 576, 0} {
		want := uint32(mtu) + 20
		if mtu == 0 {
			want = 68 + 20 // the plateau below the quoted 88 bytes (RFC 1191 section 7)
		}
		want = max(min(want, 1500), 1280)
		in := withV4(t, client4, server4, 0, 64, false, layers.IPProtocolICMPv4, icmp4Err(3, 4, uint32(mtu), in4))
		b.add(fmt.Sprintf("4to6 fragmentation needed mtu %d -> packet too big %d", mtu, want), "RFC 7915 4.2 Code 4, RFC 1191 5", "clat", in,
			withV6(t, c6, s6, 0, 63, icmp6Err(c6, s6, 2, 0, want, in6)))
	}
}

// icmp6Errors is RFC 7915 section 5.2's table, 5.3 and the pointer rules.
func (b *corpusBuilder) icmp6Errors(m model) {
	t := b.t
	c6, s6 := m.to6(client4), m.to6(server4)
	x := l4{"udp", 60}
	in6 := v6pkt(t, c6, s6, 0, 50, x) // what the server's ICMPv6 error quotes
	in4 := v4pkt(t, client4, server4, 0, 50, false, x)
	binary.BigEndian.PutUint16(in4[4:], 0) // inner Identification: 0 (section 5.3 with 5.1)
	binary.BigEndian.PutUint16(in4[10:], 0)
	binary.BigEndian.PutUint16(in4[10:], header.Checksum(in4[:20], 0))
	type row struct {
		typ, code   uint8
		ntyp, ncode uint8
		drop        bool
	}
	rows := []row{
		{1, 0, 3, 1, false}, {1, 1, 3, 10, false}, {1, 2, 3, 1, false}, {1, 3, 3, 1, false}, {1, 4, 3, 3, false},
		{1, 5, 0, 0, true}, {1, 6, 0, 0, true},
		{3, 0, 11, 0, false}, {3, 1, 11, 1, false},
		{4, 1, 3, 2, false}, {4, 2, 0, 0, true},
		{100, 0, 0, 0, true}, {127, 0, 0, 0, true},
	}
	for _, r := range rows {
		in := withV6(t, s6, c6, 0, 64, icmp6Err(s6, c6, r.typ, r.code, 0, in6))
		name := fmt.Sprintf("6to4 icmpv6 error %d/%d", r.typ, r.code)
		if r.drop {
			b.add(name+" dropped", "RFC 7915 5.2", "clat", in)
			continue
		}
		b.add(fmt.Sprintf("%s -> %d/%d", name, r.ntyp, r.ncode), "RFC 7915 5.2, 5.3", "clat", in,
			withV4(t, server4, client4, 0, 63, false, layers.IPProtocolICMPv4, icmp4Err(r.ntyp, r.ncode, 0, in4)))
	}
	// MLD, Neighbor Discovery and unknown informational types: single hop
	// or unknown, dropped.
	for _, typ := range []uint8{130, 131, 132, 133, 134, 135, 136, 137, 143, 200, 255} {
		b.add(fmt.Sprintf("6to4 icmpv6 type %d dropped", typ), "RFC 7915 5.2", "clat",
			withV6(t, s6, c6, 0, 64, icmp6Err(s6, c6, typ, 0, 0, []byte("informational"))))
	}
	// Parameter Problem code 0: the pointer moves to the IPv4 field
	// (section 5.2's figure); fields without one drop.
	ptrs := map[uint32]int{0: 0, 1: 1, 2: -1, 3: -1, 4: 2, 5: 2, 6: 9, 7: 8, 8: 12, 23: 12, 24: 16, 39: 16, 40: -1, 100: -1}
	for _, p := range []uint32{0, 1, 2, 3, 4, 5, 6, 7, 8, 23, 24, 39, 40, 100} {
		n := ptrs[p]
		in := withV6(t, s6, c6, 0, 64, icmp6Err(s6, c6, 4, 0, p, in6))
		name := fmt.Sprintf("6to4 parameter problem 4/0 pointer %d", p)
		if n < 0 {
			b.add(name+" dropped", "RFC 7915 5.2 Parameter Problem", "clat", in)
			continue
		}
		b.add(fmt.Sprintf("%s -> 12/0 pointer %d", name, n), "RFC 7915 5.2 Parameter Problem", "clat", in,
			withV4(t, server4, client4, 0, 63, false, layers.IPProtocolICMPv4, icmp4Err(12, 0, uint32(n)<<24, in4)))
	}
	// Packet Too Big: MTU - 20 (section 5.2), within the next hops' MTUs
	// where they are known (clat-mtu: 1400 on both sides: IPv4 1400, IPv6
	// 1400 - 20).
	for _, mtu := range []uint32{1500, 1400, 1280} {
		in := withV6(t, s6, c6, 0, 64, icmp6Err(s6, c6, 2, 0, mtu, in6))
		b.add(fmt.Sprintf("6to4 packet too big %d -> fragmentation needed %d", mtu, mtu-20), "RFC 7915 5.2 Type 2", "clat", in,
			withV4(t, server4, client4, 0, 63, false, layers.IPProtocolICMPv4, icmp4Err(3, 4, mtu-20, in4)))
		want := min(mtu-20, 1400, 1400-20)
		b.add(fmt.Sprintf("6to4 packet too big %d with next-hop MTUs 1400 -> %d", mtu, want), "RFC 7915 5.2 Type 2", "clat-mtu", in,
			withV4(t, server4, client4, 0, 63, false, layers.IPProtocolICMPv4, icmp4Err(3, 4, want, in4)))
	}
	// RFC 6791 / section 5.1 Source Address: an error from an IPv6 router
	// with no IPv4 mapping comes from 192.0.0.8 (RFC 7600).
	for _, tc := range [][2]uint8{{1, 4}, {3, 0}} {
		in := withV6(t, router6, c6, 0, 64, icmp6Err(router6, c6, tc[0], tc[1], 0, in6))
		n := map[uint8]uint8{1: 3, 3: 11}[tc[0]]
		nc := map[uint8]uint8{4: 3, 0: 0}[tc[1]]
		b.add(fmt.Sprintf("6to4 icmpv6 error %d/%d from an unmappable router", tc[0], tc[1]), "RFC 6791, RFC 7915 5.1 Source Address", "clat", in,
			withV4(t, net.IPv4(192, 0, 0, 8), client4, 0, 63, false, layers.IPProtocolICMPv4, icmp4Err(n, nc, 0, in4)))
	}
}

// addresses is RFC 6052 section 2.2 for every prefix length, RFC 7757's
// longest match, and RFC 6052 section 3.1 behind the Well-Known Prefix.
func (b *corpusBuilder) addresses() {
	t := b.t
	a, z := net.IPv4(198, 51, 100, 7), net.IPv4(203, 0, 113, 9)
	x := l4{"udp", 24}
	for _, l := range []int{32, 40, 48, 56, 64, 96} {
		cfg := fmt.Sprintf("nsp%d", l)
		m := modelFor(cfg)
		b.add(fmt.Sprintf("4to6 rfc6052 /%d", l), "RFC 6052 2.2", cfg, v4pkt(t, a, z, 0, 64, true, x), v6pkt(t, m.to6(a), m.to6(z), 0, 63, x))
		b.add(fmt.Sprintf("6to4 rfc6052 /%d", l), "RFC 6052 2.3", cfg, v6pkt(t, m.to6(z), m.to6(a), 0, 64, x), v4pkt(t, z, a, 0, 63, false, x))
	}
	m := modelFor("eam2")
	for _, h := range []net.IP{net.IPv4(192, 0, 2, 5), net.IPv4(192, 0, 2, 130), net.IPv4(192, 0, 2, 255)} {
		b.add(fmt.Sprintf("4to6 eam longest match %s", h), "RFC 7757 3.2", "eam2", v4pkt(t, h, z, 0, 64, true, x), v6pkt(t, m.to6(h), m.to6(z), 0, 63, x))
		b.add(fmt.Sprintf("6to4 eam longest match %s", h), "RFC 7757 3.2", "eam2", v6pkt(t, m.to6(z), m.to6(h), 0, 64, x), v4pkt(t, z, h, 0, 63, false, x))
	}
	w := modelFor("wkp")
	g := net.IPv4(8, 8, 8, 8)
	b.add("4to6 wkp global", "RFC 6052 2.1", "wkp", v4pkt(t, net.IPv4(1, 1, 1, 1), g, 0, 64, true, x), v6pkt(t, w.to6(net.IPv4(1, 1, 1, 1)), w.to6(g), 0, 63, x))
	for _, s := range []string{"10.1.2.3", "100.64.0.1", "127.0.0.1", "169.254.1.1", "172.16.0.1", "192.0.0.9", "192.0.2.1", "192.168.1.1", "198.18.0.1", "198.51.100.1", "203.0.113.1"} {
		n := net.ParseIP(s).To4()
		b.add("4to6 wkp non-global destination "+s+" dropped", "RFC 6052 3.1", "wkp", v4pkt(t, g, n, 0, 64, true, x))
	}
	for _, s := range []string{"10.1.2.3", "192.168.1.1", "100.64.0.1"} {
		n := net.ParseIP(s).To4()
		in := v6pkt(t, w.to6(n), w.to6(g), 0, 64, x)
		// dropped; section 5.4's 1/1 goes back to the source
		b.add("6to4 wkp non-global source "+s+" dropped", "RFC 6052 3.1, RFC 7915 5.4", "wkp", in,
			withV6(t, w.addr6, w.to6(n), 0, 64, icmp6Err(w.addr6, w.to6(n), 1, 1, 0, in)))
	}
}

// eamTable is RFC 7757 Appendix B's table (section 3.2's mapping): every
// row both ways, with suffixes of other lengths than the IPv4 one.
func (b *corpusBuilder) eamTable() {
	t := b.t
	m := modelFor("rfc7757")
	z := net.IPv4(198, 51, 100, 9) // a host behind the pool
	x := l4{"udp", 24}
	for _, s := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.16", "192.0.2.24", "192.0.2.31", "192.0.2.128", "192.0.2.152", "192.0.2.183", "192.0.2.191", "192.0.2.195", "192.0.2.225"} {
		h := net.ParseIP(s).To4()
		b.add("4to6 rfc7757 table "+s, "RFC 7757 3.2, Appendix B", "rfc7757", v4pkt(t, z, h, 0, 64, true, x), v6pkt(t, m.to6(z), m.to6(h), 0, 63, x))
		b.add("6to4 rfc7757 table "+s, "RFC 7757 3.2, Appendix B", "rfc7757", v6pkt(t, m.to6(h), m.to6(z), 0, 64, x), v4pkt(t, h, z, 0, 63, false, x))
	}
	// The bits of an IPv6 suffix beyond the IPv4 suffix do not take part
	// towards IPv4: any interface identifier in 2001:db8:dddd::/64 whose
	// first 6 bits are 011000 is 192.0.2.152.
	b.add("6to4 rfc7757 longer ipv6 suffix ignored", "RFC 7757 3.2", "rfc7757",
		v6pkt(t, net.ParseIP("2001:db8:dddd:0:6123:4567:89ab:cdef"), m.to6(z), 0, 64, x), v4pkt(t, net.IPv4(192, 0, 2, 152), z, 0, 63, false, x))
}

// hairpinning is RFC 7757 section 4.2.2 (intrinsic hairpinning): IPv6 host
// A (192.0.2.1 by EAM) reaches IPv6 host B (192.0.2.2) through B's IPv4
// address in the pool. The translator turns the packet back to IPv6 itself:
// the destination by B's EAM, the source through the pool (not A's EAM), so
// that B answers through the translator too; one hop, one Hop Limit less.
func (b *corpusBuilder) hairpinning() {
	t := b.t
	m := modelFor("rfc7757")
	a4, b4 := net.IPv4(192, 0, 2, 1), net.IPv4(192, 0, 2, 2)
	a6, b6 := m.to6(a4), m.to6(b4)
	ap, bp := modelEmbed(m.pool, m.poolBits, a4), modelEmbed(m.pool, m.poolBits, b4)
	for _, p := range []string{"udp", "tcp", "echo"} {
		x := l4{p, 32}
		b.add("hairpin A to B "+p, "RFC 7757 4.2.2 (condition A)", "rfc7757", v6pkt(t, a6, bp, 0x28, 64, x), v6pkt(t, ap, b6, 0x28, 63, x))
	}
	b.add("hairpin B answers A", "RFC 7757 4.2.2 (condition A)", "rfc7757",
		v6pkt(t, b6, ap, 0, 64, l4{"reply", 32}), v6pkt(t, bp, a6, 0, 63, l4{"reply", 32}))
	// B's port unreachable about a hairpinned datagram (which B saw from
	// A's pool address): to A from B's pool address, quoting what A sent.
	x := l4{"udp", 60}
	quoteB := v6pkt(t, ap, b6, 0, 63, x)
	quoteA := v6pkt(t, a6, bp, 0, 63, x)
	b.add("hairpin B's port unreachable to A", "RFC 7757 4.2.2 (condition B), RFC 7915 4.2/5.2", "rfc7757",
		withV6(t, b6, ap, 0, 64, icmp6Err(b6, ap, 1, 4, 0, quoteB)),
		withV6(t, bp, a6, 0, 63, icmp6Err(bp, a6, 1, 4, 0, quoteA)))
	// Not hairpinning: A to an IPv4 host, and an IPv4 host to B.
	z := net.IPv4(198, 51, 100, 9)
	b.add("no hairpin A to IPv4", "RFC 7757 4.2.2", "rfc7757", v6pkt(t, a6, m.to6(z), 0, 64, x), v4pkt(t, a4, z, 0, 63, false, x))
	b.add("no hairpin IPv4 to B", "RFC 7757 4.2.2", "rfc7757", v4pkt(t, z, b4, 0, 64, false, x), v6pkt(t, m.to6(z), b6, 0, 63, x))
}

// specials: multicast, broadcast, illegal sources, extension headers.
func (b *corpusBuilder) specials(m model) {
	t := b.t
	c6, s6 := m.to6(client4), m.to6(server4)
	x := l4{"udp", 24}
	for _, d := range []string{"224.0.0.1", "239.255.255.250", "255.255.255.255"} {
		b.add("4to6 to "+d+" ttl 1 dropped, no error", "RFC 1812 4.3.2.7", "clat", v4pkt(t, client4, net.ParseIP(d), 0, 1, false, x))
	}
	for _, d := range []string{"ff02::1", "ff02::16", "ff0e::1"} {
		b.add("6to4 to "+d+" hop 1 dropped, no error", "RFC 4443 2.4 (e.3)", "clat", v6pkt(t, c6, net.ParseIP(d), 0, 1, x))
	}
	// Section 4.1 Source Address: an ICMPv4 error from an illegal source is
	// translated (for troubleshooting); other packets from one are dropped.
	in4, in6 := b.inner(m)
	for _, s := range []string{"0.0.0.0", "127.0.0.1"} {
		src := net.ParseIP(s)
		in := withV4(t, src, server4, 0, 64, false, layers.IPProtocolICMPv4, icmp4Err(3, 3, 0, in4))
		b.add("4to6 icmp error from illegal source "+s, "RFC 7915 4.1 Source Address", "clat", in,
			withV6(t, m.to6(src), s6, 0, 63, icmp6Err(m.to6(src), s6, 1, 4, 0, in6)))
		b.add("4to6 udp from illegal source "+s+" dropped", "RFC 7915 4.1 Source Address", "clat", v4pkt(t, src, server4, 0, 64, true, x))
	}
	// Section 5.1: Hop-by-Hop, Destination Options and a Routing header
	// with Segments Left 0 are skipped; Segments Left > 0 gets Parameter
	// Problem pointing at it.
	udp := v6pkt(t, s6, c6, 0, 64, x)
	want := v4pkt(t, server4, client4, 0, 63, false, x)
	for _, e := range []struct {
		name string
		nh   uint8
		hdr  []byte
	}{
		{"hop-by-hop", header.ProtoHopOpts, []byte{17, 0, 1, 4, 0, 0, 0, 0}},
		{"destination options", header.ProtoDstOpts, []byte{17, 0, 1, 4, 0, 0, 0, 0}},
		{"routing, segments left 0", header.ProtoRouting, []byte{17, 0, 4, 0, 0, 0, 0, 0}},
	} {
		in := insertExt(udp, e.nh, e.hdr)
		b.add("6to4 "+e.name+" skipped", "RFC 7915 5.1", "clat", in, want)
	}
	in := insertExt(udp, header.ProtoRouting, []byte{17, 0, 4, 2, 0, 0, 0, 0})
	b.add("6to4 routing, segments left 2: parameter problem", "RFC 7915 5.1", "clat", in,
		withV6(t, m.addr6, s6, 0, 64, icmp6Err(m.addr6, s6, 4, 0, 43, in)))
}

// insertExt puts an extension header (next header nh) between the IPv6
// header and the rest of pkt.
func insertExt(pkt []byte, nh uint8, hdr []byte) []byte {
	out := append(append(append([]byte(nil), pkt[:40]...), hdr...), pkt[40:]...)
	out[40] = pkt[6]
	out[6] = nh
	header.IPv6(out).SetPayloadLen(len(out) - 40)
	return out
}

// normalize zeroes what the translator may choose: an IPv4 header's
// Identification (RFC 7915 section 5.1), and its checksum with it.
func normalize(b []byte) []byte {
	b = append([]byte(nil), b...)
	if len(b) >= 20 && b[0]>>4 == 4 {
		b[4], b[5], b[10], b[11] = 0, 0, 0, 0
	}
	return b
}

// TestConformanceCorpus replays testdata/conformance/cases.json against the
// library: for each case exactly the expected packets, byte for byte
// (what the translator may choose normalized), each a valid packet.
func TestConformanceCorpus(t *testing.T) {
	if *updateCorpus {
		cases := buildCorpus(t)
		js, _ := json.MarshalIndent(cases, "", " ")
		if err := os.MkdirAll("testdata/conformance", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(corpusFile, append(js, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	js, err := os.ReadFile(corpusFile)
	if err != nil {
		t.Fatal(err)
	}
	var cases []confCase
	if err := json.Unmarshal(js, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 150 {
		t.Errorf("the corpus has %d cases", len(cases))
	}
	for _, c := range cases {
		tr, err := New(corpusConfig(t, c.Config))
		if err != nil {
			t.Fatal(err)
		}
		in, _ := hex.DecodeString(c.In)
		res, _ := run(t, tr, in, header.Offload{})
		if len(res) != len(c.Out) {
			t.Errorf("%s (%s): %d packets out, want %d", c.Name, c.RFC, len(res), len(c.Out))
			continue
		}
		for i, w := range c.Out {
			want, _ := hex.DecodeString(w)
			if msg := packetProblem(res[i]); msg != "" {
				t.Errorf("%s (%s): output %d invalid: %s", c.Name, c.RFC, i, msg)
			}
			if !bytes.Equal(normalize(res[i]), normalize(want)) {
				t.Errorf("%s (%s): output %d\n got % x\nwant % x", c.Name, c.RFC, i, res[i], want)
			}
		}
	}
}

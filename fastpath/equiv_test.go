package fastpath

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand"
	"net/netip"
	"os"
	"testing"

	"github.com/gluon-464xlat/gluon-464xlat/header"
	"github.com/gluon-464xlat/gluon-464xlat/internal/clientpool"
	"github.com/gluon-464xlat/gluon-464xlat/siit"
	"golang.org/x/sys/unix"
)

// The lab's address plan: a CLAT /96, a PLAT /96, the client network.
var (
	clat   = netip.MustParsePrefix("fddd:1337:1337:1234:5678:9abc::/96")
	plat   = netip.MustParsePrefix("fddd:1337:2::/96")
	net4   = netip.MustParsePrefix("10.130.0.0/16")
	client = netip.MustParseAddr("10.130.7.9")
	remote = netip.MustParseAddr("198.51.100.20")
)

const (
	mtu6    = 1500 // clatd's -mtu
	lowest6 = 1280 // -lowest-ipv6-mtu
)

// tunTranslator is the TUN path with clatd's configuration
// (daemon/clatd's translatorConfig for these flags).
func tunTranslator(t testing.TB) *siit.Translator {
	a := clat.Addr().As16()
	b := net4.Addr().As4()
	copy(a[12:], b[:])
	eam, err := siit.NewEAM(net4, netip.PrefixFrom(netip.AddrFrom16(a), 96+net4.Bits()))
	if err != nil {
		t.Fatal(err)
	}
	p, err := siit.ParsePrefix6052(plat.String())
	if err != nil {
		t.Fatal(err)
	}
	own := clat.Addr().As16()
	copy(own[12:], []byte{192, 0, 0, 2})
	tr, err := siit.New(siit.Config{EAMs: []siit.EAM{eam}, LowestIPv6MTU: lowest6, MTU6: mtu6, MaxMSS: mtu6 - 60,
		Addr6: netip.AddrFrom16(own), Pool6: p})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func fastConfig() Config {
	return Config{CLAT: clat, PLAT: plat, ClientNet: net4, MTU6: mtu6, Frag6: min(lowest6, mtu6), MTU4: 0xffff, L3Offset: 14}
}

// loadForTest loads the program, or skips where the kernel does not let
// this process (not root, no BPF).
func loadForTest(t testing.TB) *Program {
	if os.Geteuid() != 0 {
		t.Skip("needs root for bpf(2)")
	}
	p, err := Load()
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	if err := p.SetConfig(fastConfig()); err != nil {
		t.Fatal(err)
	}
	return p
}

const (
	actOK       = 0 // TC_ACT_OK: on to the TUN
	actRedirect = 7 // TC_ACT_REDIRECT: translated, to the device's ingress
)

// compare runs pkt (an IPv4 or IPv6 packet) through the program and the
// TUN path and fails unless the program either left it exactly as it was
// (for the TUN) or made exactly what the TUN path makes. It returns
// whether the fast path translated it.
func compare(t *testing.T, p *Program, tr *siit.Translator, name string, pkt []byte) bool {
	t.Helper()
	return compareGSO(t, p, tr, name, pkt, 0)
}

// frame is pkt behind an Ethernet header, as a test run wants it: IPv6's
// type for an IPv6 packet, else IPv4's.
func frame(pkt []byte) []byte {
	eth := make([]byte, 14, 14+len(pkt))
	copy(eth[0:], []byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2})
	if len(pkt) > 0 && pkt[0]>>4 == 6 {
		binary.BigEndian.PutUint16(eth[12:], 0x86dd)
	} else {
		binary.BigEndian.PutUint16(eth[12:], 0x0800)
	}
	return append(eth, pkt...)
}

// compareGSO is compare for a GSO packet of segments of gsoSize bytes
// (0: not GSO).
func compareGSO(t *testing.T, p *Program, tr *siit.Translator, name string, pkt []byte, gsoSize int) bool {
	t.Helper()
	verdict, out, err := p.TestRun(frame(pkt), gsoSize)
	if errors.Is(err, unix.EINVAL) && (len(pkt) < 20 || pkt[0]>>4 == 6 && len(pkt) < 40) {
		return false // a test run needs the IP header whole; no shorter packet is routed to the TUN
	}
	if err != nil {
		t.Fatalf("%s: test run: %v", name, err)
	}
	switch verdict {
	case actOK:
		if !bytes.Equal(out[14:], pkt) {
			t.Errorf("%s: handed to the TUN changed:\n in  %x\n out %x", name, pkt, out[14:])
		}
		return false
	case actRedirect:
	default:
		t.Errorf("%s: verdict %d", name, verdict)
		return false
	}
	got := out[14:]
	buf := make([]byte, siit.Headroom+len(pkt)+64)
	copy(buf[siit.Headroom:], pkt)
	var batch siit.Batch
	in := siit.Packet{Buf: buf, Start: siit.Headroom, Len: len(pkt)}
	if gsoSize > 0 {
		in.Offload = header.Offload{GSOType: header.GSOTCPv4, GSOSize: uint16(gsoSize)}
		if pkt[0]>>4 == 6 {
			in.Offload.GSOType = header.GSOTCPv6
		}
	}
	r := tr.Translate(&in, &batch)
	if r != siit.OK || batch.N != 1 {
		t.Errorf("%s: the fast path translated what the TUN path does not (%v, %d packets):\n in  %x\n out %x", name, r, batch.N, pkt, got)
		return true
	}
	want := batch.Pkts[0].Bytes()
	if len(want) > 0 && want[0]>>4 == 4 && len(got) >= 20 && len(want) >= 20 {
		// Section 5.1: the Identification comes from a generator on each
		// path; the fast path's header checksum must hold for its own.
		if header.Checksum(got[:20], 0) != 0 {
			t.Errorf("%s: IPv4 header checksum wrong: %x", name, got[:20])
		}
		got = append([]byte(nil), got...)
		want = append([]byte(nil), want...)
		for _, b := range [][]byte{got, want} {
			copy(b[4:6], []byte{0, 0})
			copy(b[10:12], []byte{0, 0})
		}
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: fast path and TUN path differ:\n in   %x\n fast %x\n tun  %x", name, pkt, got, want)
	}
	return true
}

// Packet builders, with correct checksums unless a test breaks them.

func ipv4(src, dst netip.Addr, proto, ttl, tos uint8, df bool, l4 []byte) []byte {
	b := make([]byte, 20, 20+len(l4))
	h := header.IPv4(b)
	b[0], b[1] = 0x45, tos
	h.SetTotalLen(20 + len(l4))
	h.SetID(0x1234)
	h.SetFlagsOffset(df, false, 0)
	h.SetTTL(ttl)
	h.SetProtocol(proto)
	s, d := src.As4(), dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	h.SetChecksum()
	return append(b, l4...)
}

func ipv6(src, dst netip.Addr, nh, hop, tc uint8, l4 []byte) []byte {
	b := make([]byte, 40, 40+len(l4))
	h := header.IPv6(b)
	h.SetVersionClassFlow(tc, 0x12345)
	h.SetPayloadLen(len(l4))
	h.SetNextHeader(nh)
	h.SetHopLimit(hop)
	s, d := src.As16(), dst.As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	return append(b, l4...)
}

// l4 builds a TCP (flags), UDP or ICMP/ICMPv6 echo (typ) message with its
// checksum for the addresses it will travel between.
func l4(proto uint8, src, dst netip.Addr, flagsOrType uint8, payload []byte) []byte {
	var b []byte
	off := 0
	switch proto {
	case header.ProtoTCP:
		b = make([]byte, 20)
		binary.BigEndian.PutUint16(b[0:], 40000)
		binary.BigEndian.PutUint16(b[2:], 443)
		binary.BigEndian.PutUint32(b[4:], 0x11223344)
		b[12], b[13] = 5<<4, flagsOrType
		binary.BigEndian.PutUint16(b[14:], 64240)
		off = 16
	case header.ProtoUDP:
		b = make([]byte, 8)
		binary.BigEndian.PutUint16(b[0:], 40000)
		binary.BigEndian.PutUint16(b[2:], 53)
		binary.BigEndian.PutUint16(b[4:], uint16(8+len(payload)))
		off = 6
	default: // ICMP or ICMPv6 echo
		b = make([]byte, 8)
		b[0] = flagsOrType
		binary.BigEndian.PutUint32(b[4:], 0x0042_0007)
		off = 2
	}
	b = append(b, payload...)
	var acc uint64
	if proto != header.ProtoICMP {
		acc = header.PseudoSum(src.AsSlice(), dst.AsSlice(), proto, len(b))
	}
	c := header.Checksum(b, acc)
	if proto == header.ProtoUDP && c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(b[off:], c)
	return b
}

func in6(p netip.Prefix, a netip.Addr) netip.Addr {
	x, y := p.Addr().As16(), a.As4()
	copy(x[12:], y[:])
	return netip.AddrFrom16(x)
}

// TestFastPathTranslatesAsTheTUNPathDoes: the common packets (TCP, UDP,
// ICMP echo, both ways, RFC 7915 sections 4 and 5) are translated in the
// kernel, byte for byte as the TUN path translates them (but the IPv4
// Identification, which each path generates: section 5.1), and what the
// fast path leaves to the TUN reaches it unchanged.
func TestFastPathTranslatesAsTheTUNPathDoes(t *testing.T) {
	p := loadForTest(t)
	tr := tunTranslator(t)
	c6, r6 := in6(clat, client), in6(plat, remote)
	payload := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*7 + n)
		}
		return b
	}
	fast := []struct {
		name string
		pkt  []byte
	}{
		{"4to6 TCP ACK", ipv4(client, remote, header.ProtoTCP, 64, 0x28, true, l4(header.ProtoTCP, client, remote, 0x10, payload(100)))},
		{"4to6 TCP ACK odd length", ipv4(client, remote, header.ProtoTCP, 64, 0, true, l4(header.ProtoTCP, client, remote, 0x18, payload(1001)))},
		{"4to6 UDP", ipv4(client, remote, header.ProtoUDP, 64, 0xb8, false, l4(header.ProtoUDP, client, remote, 0, payload(36)))},
		{"4to6 UDP 1200", ipv4(client, remote, header.ProtoUDP, 3, 0, true, l4(header.ProtoUDP, client, remote, 0, payload(1200)))},
		{"4to6 echo request", ipv4(client, remote, header.ProtoICMP, 64, 0, true, l4(header.ProtoICMP, client, remote, 8, payload(56)))},
		{"4to6 echo reply", ipv4(client, remote, header.ProtoICMP, 2, 0, false, l4(header.ProtoICMP, client, remote, 0, payload(3)))},
		{"6to4 TCP ACK", ipv6(r6, c6, header.ProtoTCP, 60, 0x28, l4(header.ProtoTCP, r6, c6, 0x10, payload(1400)))},
		{"6to4 UDP", ipv6(r6, c6, header.ProtoUDP, 64, 0, l4(header.ProtoUDP, r6, c6, 0, payload(64)))},
		{"6to4 echo reply", ipv6(r6, c6, header.ProtoICMPv6, 64, 0, l4(header.ProtoICMPv6, r6, c6, 129, payload(56)))},
		{"6to4 echo request", ipv6(r6, c6, header.ProtoICMPv6, 2, 0xff, l4(header.ProtoICMPv6, r6, c6, 128, payload(1)))},
	}
	for _, f := range fast {
		if !compare(t, p, tr, f.name, f.pkt) {
			t.Errorf("%s: not on the fast path", f.name)
		}
	}
	// the UDP checksum that comes out as 0 is sent as 0xffff (section 4.5)
	n := 0
	for i := 0; i < 1<<20 && n < 3; i++ {
		pl := binary.BigEndian.AppendUint32(nil, uint32(i))
		pkt := ipv4(client, remote, header.ProtoUDP, 64, 0, true, l4(header.ProtoUDP, client, remote, 0, pl))
		buf := make([]byte, siit.Headroom+len(pkt))
		copy(buf[siit.Headroom:], pkt)
		var batch siit.Batch
		if tr.Translate(&siit.Packet{Buf: buf, Start: siit.Headroom, Len: len(pkt)}, &batch) == siit.OK &&
			binary.BigEndian.Uint16(batch.Pkts[0].Bytes()[46:]) == 0xffff {
			n++
			compare(t, p, tr, "4to6 UDP checksum 0xffff", pkt)
		}
	}
	if n == 0 {
		t.Error("no UDP datagram whose translated checksum is 0xffff was found")
	}

	// GSO TCP both ways (the kernel segments it after): the IPv4 DF
	// follows the segments' size (section 5.1), and nothing is too big
	for _, gso := range []int{1000, 1240, 1440} {
		compareGSO(t, p, tr, fmt.Sprintf("4to6 TCP GSO %d", gso), ipv4(client, remote, header.ProtoTCP, 64, 0, true, l4(header.ProtoTCP, client, remote, 0x10, payload(2*gso+1))), gso)
		compareGSO(t, p, tr, fmt.Sprintf("6to4 TCP GSO %d", gso), ipv6(r6, c6, header.ProtoTCP, 64, 0, l4(header.ProtoTCP, r6, c6, 0x10, payload(2*gso+1))), gso)
	}
	before := p.Counters()["to_tun_gso"]
	if compareGSO(t, p, tr, "4to6 UDP GSO", ipv4(client, remote, header.ProtoUDP, 64, 0, true, l4(header.ProtoUDP, client, remote, 0, payload(3000))), 1000) {
		t.Error("4to6 UDP GSO: translated on the fast path")
	}
	if p.Counters()["to_tun_gso"] != before+1 {
		t.Error("UDP GSO not counted as to_tun_gso")
	}

	counters := p.Counters()
	if counters["fast_4to6"] == 0 || counters["fast_6to4"] == 0 {
		t.Errorf("counters: %v", counters)
	}
}

// TestFastPathLeavesTheRestToTheTUN: what the fast path does not
// translate goes to the TUN unchanged (checked by compare), counted by
// reason: ICMP errors, fragments, options, extension headers, SYNs (the
// MSS clamp), zero UDP checksums, TTL/hop limit running out, packets too
// big for the other side, addresses outside the plan, broken headers.
func TestFastPathLeavesTheRestToTheTUN(t *testing.T) {
	p := loadForTest(t)
	tr := tunTranslator(t)
	c6, r6 := in6(clat, client), in6(plat, remote)
	udp4 := func(df bool, n int) []byte {
		return ipv4(client, remote, header.ProtoUDP, 64, 0, df, l4(header.ProtoUDP, client, remote, 0, make([]byte, n)))
	}
	frag := udp4(false, 100)
	binary.BigEndian.PutUint16(frag[6:], 0x2000) // MF
	header.IPv4(frag).SetChecksum()
	opts := append([]byte{0x46, 0, 0, 0, 0, 0, 0, 0, 64, header.ProtoUDP, 0, 0}, udp4(true, 20)[12:20]...)
	opts = append(append(opts, 1, 1, 1, 0), l4(header.ProtoUDP, client, remote, 0, make([]byte, 20))...)
	binary.BigEndian.PutUint16(opts[2:], uint16(len(opts)))
	header.IPv4(opts).SetChecksum()
	badsum := udp4(true, 20)
	badsum[10] ^= 0xff
	zero := udp4(true, 20)
	zero[26], zero[27] = 0, 0
	icmpErr := ipv4(client, remote, header.ProtoICMP, 64, 0, false, append([]byte{3, 1, 0, 0, 0, 0, 0, 0}, udp4(true, 8)...))
	binary.BigEndian.PutUint16(icmpErr[22:], header.Checksum(icmpErr[20:], 0))
	hop6 := append([]byte{header.ProtoUDP, 0, 1, 4, 0, 0, 0, 0}, l4(header.ProtoUDP, r6, c6, 0, make([]byte, 8))...)
	other := netip.MustParseAddr("10.131.0.1")
	cases := []toTUN{
		{"4to6 SYN", ipv4(client, remote, header.ProtoTCP, 64, 0, true, l4(header.ProtoTCP, client, remote, 0x02, nil)), "to_tun_syn"},
		{"4to6 fragment", frag, "to_tun_header"},
		{"4to6 options", opts, "to_tun_header"},
		{"4to6 bad header checksum", badsum, "to_tun_checksum"},
		{"4to6 zero UDP checksum", zero, "to_tun_checksum"},
		{"4to6 TTL 1", ipv4(client, remote, header.ProtoUDP, 1, 0, true, l4(header.ProtoUDP, client, remote, 0, nil)), "to_tun_hop_limit"},
		{"4to6 too big with DF", udp4(true, mtu6-40-8+1), "to_tun_size"},
		{"4to6 fragmented without DF", udp4(false, lowest6-40-8+1), "to_tun_size"},
		{"4to6 ICMP error", icmpErr, "to_tun_protocol"},
		{"4to6 from outside the client net", ipv4(other, remote, header.ProtoUDP, 64, 0, true, l4(header.ProtoUDP, other, remote, 0, nil)), "to_tun_address"},
		{"4to6 to the client net", ipv4(client, client.Next(), header.ProtoUDP, 64, 0, true, l4(header.ProtoUDP, client, client.Next(), 0, nil)), "to_tun_address"},
		{"4to6 multicast", ipv4(client, netip.MustParseAddr("224.0.0.251"), header.ProtoUDP, 64, 0, true, l4(header.ProtoUDP, client, netip.MustParseAddr("224.0.0.251"), 0, nil)), "to_tun_address"},
		{"4to6 GRE", ipv4(client, remote, 47, 64, 0, true, make([]byte, 24)), "to_tun_protocol"},
		{"4to6 truncated", udp4(true, 20)[:30], "to_tun_header"},
		{"6to4 SYN", ipv6(r6, c6, header.ProtoTCP, 64, 0, l4(header.ProtoTCP, r6, c6, 0x12, nil)), "to_tun_syn"},
		{"6to4 hop limit 1", ipv6(r6, c6, header.ProtoUDP, 1, 0, l4(header.ProtoUDP, r6, c6, 0, nil)), "to_tun_hop_limit"},
		{"6to4 hop-by-hop options", ipv6(r6, c6, header.ProtoHopOpts, 64, 0, hop6), "to_tun_header"},
		{"6to4 ICMPv6 error", ipv6(r6, c6, header.ProtoICMPv6, 64, 0, append([]byte{1, 0, 0, 0, 0, 0, 0, 0}, make([]byte, 48)...)), "to_tun_protocol"},
		{"6to4 not from the PLAT", ipv6(c6, c6, header.ProtoUDP, 64, 0, l4(header.ProtoUDP, c6, c6, 0, nil)), "to_tun_address"},
		{"6to4 to another CLAT", ipv6(r6, in6(clat, other), header.ProtoUDP, 64, 0, l4(header.ProtoUDP, r6, in6(clat, other), 0, nil)), "to_tun_address"},
		{"6to4 payload length wrong", ipv6(r6, c6, header.ProtoUDP, 64, 0, l4(header.ProtoUDP, r6, c6, 0, nil))[:47], "to_tun_header"},
		{"6to4 zero UDP checksum", func() []byte {
			b := ipv6(r6, c6, header.ProtoUDP, 64, 0, l4(header.ProtoUDP, r6, c6, 0, make([]byte, 8)))
			b[46], b[47] = 0, 0
			return b
		}(), "to_tun_checksum"},
	}
	leftToTheTUN(t, p, tr, cases)
	// without a PLAT prefix everything goes to the TUN
	c := fastConfig()
	c.PLAT = netip.Prefix{}
	if err := p.SetConfig(c); err != nil {
		t.Fatal(err)
	}
	if compare(t, p, tr, "no PLAT", udp4(true, 20)) {
		t.Error("translated without a PLAT prefix")
	}
}

// toTUN is a packet the fast path must leave to the TUN, and the reason
// it must count.
type toTUN struct {
	name   string
	pkt    []byte
	reason string
}

// leftToTheTUN checks each case: unchanged for the TUN, counted by its reason.
func leftToTheTUN(t *testing.T, p *Program, tr *siit.Translator, cases []toTUN) {
	t.Helper()
	for _, c := range cases {
		before := p.Counters()[c.reason]
		if compare(t, p, tr, c.name, c.pkt) {
			t.Errorf("%s: translated on the fast path", c.name)
		}
		if p.Counters()[c.reason] != before+1 {
			t.Errorf("%s: not counted as %s: %v", c.name, c.reason, p.Counters())
		}
	}
}

// FuzzFastPath: whatever the bytes, the program either hands the packet
// to the TUN unchanged or translates it exactly as the TUN path does.
func FuzzFastPath(f *testing.F) {
	c6, r6 := in6(clat, client), in6(plat, remote)
	f.Add(ipv4(client, remote, header.ProtoTCP, 64, 0, true, l4(header.ProtoTCP, client, remote, 0x10, []byte("data"))))
	f.Add(ipv4(client, remote, header.ProtoUDP, 64, 0, false, l4(header.ProtoUDP, client, remote, 0, []byte("data"))))
	f.Add(ipv4(client, remote, header.ProtoICMP, 64, 0, false, l4(header.ProtoICMP, client, remote, 8, []byte("data"))))
	f.Add(ipv6(r6, c6, header.ProtoTCP, 64, 0, l4(header.ProtoTCP, r6, c6, 0x10, []byte("data"))))
	f.Add(ipv6(r6, c6, header.ProtoUDP, 64, 0, l4(header.ProtoUDP, r6, c6, 0, []byte("data"))))
	f.Add(ipv6(r6, c6, header.ProtoICMPv6, 64, 0, l4(header.ProtoICMPv6, r6, c6, 128, []byte("data"))))
	fuzzCompare(f, loadForTest(f), tunTranslator(f))
}

// fuzzCompare runs compare on every input of f.
func fuzzCompare(f *testing.F, p *Program, tr *siit.Translator) {
	f.Fuzz(func(t *testing.T, pkt []byte) {
		if len(pkt) == 0 || len(pkt) > 2000 {
			return
		}
		compare(t, p, tr, fmt.Sprintf("%x", pkt), pkt)
	})
}

// TestFastPathOnMutatedPackets: a bounded fuzz run in every `go test`:
// each of the common packets with random bytes changed.
func TestFastPathOnMutatedPackets(t *testing.T) {
	p := loadForTest(t)
	tr := tunTranslator(t)
	c6, r6 := in6(clat, client), in6(plat, remote)
	seeds := [][]byte{
		ipv4(client, remote, header.ProtoTCP, 64, 0, true, l4(header.ProtoTCP, client, remote, 0x10, []byte("some data"))),
		ipv4(client, remote, header.ProtoUDP, 64, 0, false, l4(header.ProtoUDP, client, remote, 0, []byte("some data"))),
		ipv4(client, remote, header.ProtoICMP, 64, 0, false, l4(header.ProtoICMP, client, remote, 8, []byte("some data"))),
		ipv6(r6, c6, header.ProtoTCP, 64, 0, l4(header.ProtoTCP, r6, c6, 0x10, []byte("some data"))),
		ipv6(r6, c6, header.ProtoUDP, 64, 0, l4(header.ProtoUDP, r6, c6, 0, []byte("some data"))),
		ipv6(r6, c6, header.ProtoICMPv6, 64, 0, l4(header.ProtoICMPv6, r6, c6, 129, []byte("some data"))),
	}
	mutate(t, p, tr, seeds)
}

// mutate runs 20 000 mutations of the seeds through compare.
func mutate(t *testing.T, p *Program, tr *siit.Translator, seeds [][]byte) {
	rng := rand.New(rand.NewSource(7915))
	for i := 0; i < 20000 && !t.Failed(); i++ {
		compare(t, p, tr, fmt.Sprintf("mutation %d", i), mutant(rng, seeds[i%len(seeds)]))
	}
}

// mutant is a copy of seed with one to three bytes changed, and one time
// in eight cut short.
func mutant(rng *rand.Rand, seed []byte) []byte {
	pkt := append([]byte(nil), seed...)
	for j := rng.Intn(3) + 1; j > 0; j-- {
		pkt[rng.Intn(len(pkt))] = byte(rng.Intn(256))
	}
	if rng.Intn(8) == 0 {
		pkt = pkt[:rng.Intn(len(pkt))+1]
	}
	return pkt
}

// platd's side of the plan: its client pool, the PLAT /96, the
// special-purpose IPv4 space it refuses (platd's deny list with the lab's
// -allow 198.51.100.0/24).
var (
	clientPool = netip.MustParsePrefix("198.18.0.0/16")
	platDeny   = []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("100.64.0.0/10"),
		netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("169.254.0.0/16"), netip.MustParsePrefix("172.16.0.0/12"),
		netip.MustParsePrefix("192.0.0.0/24"), netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("192.168.0.0/16"),
		netip.MustParsePrefix("198.18.0.0/15"), netip.MustParsePrefix("203.0.113.0/24"),
		netip.MustParsePrefix("224.0.0.0/4"), netip.MustParsePrefix("240.0.0.0/4"),
	}
)

// loadPLAT loads the program with platd's configuration and makes
// platd's TUN path (daemon/platd's translatorConfig) beside it, both
// following one client pool as in platd; the client in6(clat, client) has
// its address (clientAddr) already.
func loadPLAT(t testing.TB) (*Program, *siit.Translator) {
	prog := loadForTest(t)
	if err := prog.SetConfig(Config{PLAT: plat, ClientNet: clientPool, MTU6: mtu6, Frag6: min(lowest6, mtu6),
		MTU4: 0xffff, L3Offset: 14, PLATMode: true, Deny: platDeny}); err != nil {
		t.Fatal(err)
	}
	pool, err := clientpool.New(clientPool, netip.MustParsePrefix("fddd:1337:1337::/48"), "", clientpool.Hooks{Mapped: prog.MapClient, Unmapped: prog.UnmapClient})
	if err != nil {
		t.Fatal(err)
	}
	if a, ok := pool.To4(in6(clat, client).As16(), true); !ok || netip.AddrFrom4(a) != clientAddr {
		t.Fatalf("the first client got %v, want %s", a, clientAddr)
	}
	p, err := siit.ParsePrefix6052(plat.String())
	if err != nil {
		t.Fatal(err)
	}
	mgmt := in6(plat, netip.MustParseAddr("192.0.0.1"))
	tr, err := siit.New(siit.Config{Pool6: p, Clients: pool, Addr4: pool.Own(), Pool6791: pool.Own(), Addr6: mgmt,
		EAMs: []siit.EAM{{V4: netip.PrefixFrom(pool.Own(), 32), V6: netip.PrefixFrom(mgmt, 128)}}, MTU6: mtu6, Deny4: platDeny})
	if err != nil {
		t.Fatal(err)
	}
	return prog, tr
}

// clientAddr is the first client's address in clientPool.
var clientAddr = netip.MustParseAddr("198.18.0.2")

// platSeeds are the common packets through platd: from a client in the
// mesh (CLAT::a.b.c.d -> PLAT::w.x.y.z) and their answers.
func platSeeds(payload []byte) [][]byte {
	c6, r6 := in6(clat, client), in6(plat, remote)
	return [][]byte{
		ipv6(c6, r6, header.ProtoTCP, 63, 0x28, l4(header.ProtoTCP, c6, r6, 0x10, payload)),
		ipv6(c6, r6, header.ProtoUDP, 63, 0, l4(header.ProtoUDP, c6, r6, 0, payload)),
		ipv6(c6, r6, header.ProtoICMPv6, 63, 0, l4(header.ProtoICMPv6, c6, r6, 128, payload)),
		ipv4(remote, clientAddr, header.ProtoTCP, 50, 0xb8, true, l4(header.ProtoTCP, remote, clientAddr, 0x10, payload)),
		ipv4(remote, clientAddr, header.ProtoUDP, 50, 0, false, l4(header.ProtoUDP, remote, clientAddr, 0, payload)),
		ipv4(remote, clientAddr, header.ProtoICMP, 50, 0, false, l4(header.ProtoICMP, remote, clientAddr, 0, payload)),
	}
}

// TestPLATModeTranslatesAsPlatdsTUNPathDoes: platd's stateless step
// (before its SNAT; RFC 6146 section 3.5 leaves the translation of the
// packet itself to RFC 7915, RFC 7757 the mapping of a client's address
// to its own) translates the common packets as platd's TUN path does, and
// leaves the rest to it: above all the special-purpose destinations its
// TUN path refuses, and a new client, whose address the TUN path gives.
func TestPLATModeTranslatesAsPlatdsTUNPathDoes(t *testing.T) {
	p, tr := loadPLAT(t)
	for i, pkt := range platSeeds(make([]byte, 300)) {
		if !compare(t, p, tr, fmt.Sprintf("platd seed %d", i), pkt) {
			t.Errorf("platd seed %d: not on the fast path", i)
		}
	}
	c6, r6 := in6(clat, client), in6(plat, remote)
	compareGSO(t, p, tr, "platd 6to4 TCP GSO", ipv6(c6, r6, header.ProtoTCP, 64, 0, l4(header.ProtoTCP, c6, r6, 0x10, make([]byte, 3001))), 1440)
	compareGSO(t, p, tr, "platd 4to6 TCP GSO", ipv4(remote, clientAddr, header.ProtoTCP, 64, 0, true, l4(header.ProtoTCP, remote, clientAddr, 0x10, make([]byte, 3001))), 1440)
	denied, priv := in6(plat, netip.MustParseAddr("10.1.2.3")), in6(plat, netip.MustParseAddr("192.168.1.1"))
	other := netip.MustParseAddr("fddd:1337:1337:99::a82:7")
	next := netip.MustParseAddr("198.18.0.3") // the next client's, nobody's yet
	cases := []toTUN{
		{"6to4 to 10/8", ipv6(c6, denied, header.ProtoUDP, 64, 0, l4(header.ProtoUDP, c6, denied, 0, nil)), "to_tun_address"},
		{"6to4 to 192.168/16", ipv6(c6, priv, header.ProtoTCP, 64, 0, l4(header.ProtoTCP, c6, priv, 0x10, nil)), "to_tun_address"},
		{"6to4 SYN", ipv6(c6, r6, header.ProtoTCP, 64, 0, l4(header.ProtoTCP, c6, r6, 0x02, nil)), "to_tun_syn"},
		{"4to6 to an address nobody has yet", ipv4(remote, next, header.ProtoUDP, 64, 0, true, l4(header.ProtoUDP, remote, next, 0, nil)), "to_tun_client"},
		{"4to6 not to the pool", ipv4(remote, client, header.ProtoUDP, 64, 0, true, l4(header.ProtoUDP, remote, client, 0, nil)), "to_tun_address"},
		{"4to6 from the pool", ipv4(clientAddr, remote, header.ProtoUDP, 64, 0, true, l4(header.ProtoUDP, clientAddr, remote, 0, nil)), "to_tun_address"},
		{"6to4 from a new client", ipv6(other, r6, header.ProtoUDP, 64, 0, l4(header.ProtoUDP, other, r6, 0, nil)), "to_tun_client"},
	}
	leftToTheTUN(t, p, tr, cases)
	// the TUN path gave the new client an address: its next packet, and
	// the answers to it, are the fast path's
	var batch siit.Batch
	pkt := ipv6(other, r6, header.ProtoUDP, 64, 0, l4(header.ProtoUDP, other, r6, 0, nil))
	buf := append(make([]byte, siit.Headroom), pkt...)
	if r := tr.Translate(&siit.Packet{Buf: buf, Start: siit.Headroom, Len: len(pkt)}, &batch); r != siit.OK {
		t.Fatalf("the TUN path refused the new client: %v", r)
	}
	if !compare(t, p, tr, "6to4 from the new client, mapped", pkt) {
		t.Error("the new client's packets stay off the fast path after the TUN path mapped it")
	}
	back := ipv4(remote, next, header.ProtoUDP, 64, 0, true, l4(header.ProtoUDP, remote, next, 0, nil))
	if !compare(t, p, tr, "4to6 to the new client", back) {
		t.Error("the new client's answers stay off the fast path")
	}
	mutate(t, p, tr, platSeeds([]byte("some data")))
}

// FuzzFastPathPLAT is FuzzFastPath in PLAT mode, against platd's TUN path.
func FuzzFastPathPLAT(f *testing.F) {
	for _, s := range platSeeds([]byte("data")) {
		f.Add(s)
	}
	p, tr := loadPLAT(f)
	fuzzCompare(f, p, tr)
}

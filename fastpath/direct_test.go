package fastpath

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand"
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/gluon-464xlat/gluon-464xlat/header"
	"github.com/gluon-464xlat/gluon-464xlat/internal/netlab"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// directLab is a node's routing in a private namespace: "clat" (a veth
// standing in for the TUN: the program only needs its index), the mesh
// behind mesh0 with the PLAT /96 via a neighbour (or, gw false, on the
// link, as an exit's own PLAT is), and the clients on lan0.
func directLab(t *testing.T, gw bool) (clatIdx, lanIdx int) {
	for _, s := range []string{"net/ipv6/conf/all/forwarding", "net/ipv4/conf/all/forwarding"} {
		if err := os.WriteFile("/proc/sys/"+s, []byte("1"), 0); err != nil {
			t.Fatal(err)
		}
	}
	mk := func(name string) netlink.Link {
		l := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "p"}
		if err := netlink.LinkAdd(l); err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{name, name + "p"} {
			if err := netlink.LinkSetUp(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: n}}); err != nil {
				t.Fatal(err)
			}
		}
		l2, err := netlink.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		return l2
	}
	c, mesh, lan := mk("clat"), mk("mesh0"), mk("lan0")
	addr := func(l netlink.Link, a string) {
		if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: mustNet(a), Flags: unix.IFA_F_NODAD}); err != nil {
			t.Fatal(err)
		}
	}
	addr(mesh, "fd00:1::1/64")
	addr(lan, "10.130.0.1/16")
	r := &netlink.Route{LinkIndex: mesh.Attrs().Index, Dst: mustNet(plat.String())}
	if gw {
		r.Gw = net.ParseIP("fd00:1::2")
	}
	if err := netlink.RouteAdd(r); err != nil {
		t.Fatal(err)
	}
	// IPv4 from the clients into the CLAT, but for a network on lan0
	for _, r := range []*netlink.Route{{LinkIndex: c.Attrs().Index, Dst: mustNet("0.0.0.0/0")},
		{LinkIndex: lan.Attrs().Index, Dst: mustNet("192.0.2.0/24")}} {
		if err := netlink.RouteAdd(r); err != nil {
			t.Fatal(err)
		}
	}
	return c.Attrs().Index, lan.Attrs().Index
}

func mustNet(s string) *net.IPNet {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	n.IP = ip
	return n
}

// runOn runs an IP packet through the program as leaving dev (or, as a
// frame to dev's own MAC, arriving there), and returns the verdict and the
// IP packet it made.
func runOn(t *testing.T, p *Program, dev int, pkt []byte) (uint32, []byte) {
	t.Helper()
	v, out, err := tryOn(p, dev, pkt)
	if err != nil {
		t.Fatalf("test run: %v", err)
	}
	return v, out
}

// tryOn is runOn's test run, whose error (a header the kernel's test run
// refuses) the caller judges.
func tryOn(p *Program, dev int, pkt []byte) (uint32, []byte, error) {
	eth := make([]byte, 14, 14+len(pkt))
	if l, err := netlink.LinkByIndex(dev); err == nil {
		copy(eth, l.Attrs().HardwareAddr)
	}
	eth[12], eth[13] = 0x08, 0x00
	if pkt[0]>>4 == 6 {
		eth[12], eth[13] = 0x86, 0xdd
	}
	v, out, err := p.TestRunOn(dev, append(eth, pkt...), 0)
	if err != nil {
		return 0, nil, err
	}
	return v, out[14:], nil
}

// TestDirectSendsUDPAndEchoOutUnlessNetfilterMustSeeThem: what the
// program sends straight to the FIB's device (bpf_redirect_neigh) and what
// it leaves to the stack's second pass, in a namespace with a node's
// routes. Direct: UDP and ICMP echo both ways, one hop less than the
// second pass would leave them (it takes that pass's hop). Second pass:
// TCP (conntrack follows its windows both ways), a client that roamed
// here (l3roamd rewrites it in netfilter), a PLAT on the link (an exit's
// own: platd's NAT66), and everything once SetRoamed had too many clients.
func TestDirectSendsUDPAndEchoOutUnlessNetfilterMustSeeThem(t *testing.T) {
	for _, gw := range []bool{true, false} {
		netlab.InPrivateNetns(t, func() {
			dev, _ := directLab(t, gw)
			p := loadForTest(t)
			cfg := fastConfig()
			tr := tunTranslator(t)
			udp4 := ipv4(client, remote, header.ProtoUDP, 64, 0, true, l4(header.ProtoUDP, client, remote, 0, []byte("direct")))
			tcp4 := ipv4(client, remote, header.ProtoTCP, 64, 0, true, l4(header.ProtoTCP, client, remote, 0x10, []byte("direct")))
			c6, r6 := in6(clat, client), in6(plat, remote)
			udp6 := ipv6(r6, c6, header.ProtoUDP, 64, 0, l4(header.ProtoUDP, r6, c6, 0, []byte("direct")))
			echo6 := ipv6(r6, c6, header.ProtoICMPv6, 64, 0, l4(header.ProtoICMPv6, r6, c6, 129, []byte("direct")))

			// the second pass's translation, from the same program
			_, via4 := runOn(t, p, dev, udp4)
			via4 = append([]byte(nil), via4...)
			compare(t, p, tr, "UDP 4->6", udp4)
			cfg.Direct = true
			if err := p.SetConfig(cfg); err != nil {
				t.Fatal(err)
			}
			direct := func(name string, pkt []byte, want bool) []byte {
				t.Helper()
				before := p.Counters()
				v, out := runOn(t, p, dev, pkt)
				after := p.Counters()
				got := after["direct_4to6"]+after["direct_6to4"] > before["direct_4to6"]+before["direct_6to4"]
				if v != actRedirect || got != want {
					t.Errorf("gateway %v, %s: verdict %d, direct %v, want direct %v", gw, name, v, got, want)
				}
				return out
			}
			want := gw // a PLAT on the link: its NAT66 is netfilter's
			out := direct("UDP 4->6", udp4, want)
			if want {
				if out[7] != via4[7]-1 || !bytes.Equal(out[:7], via4[:7]) || !bytes.Equal(out[8:len(via4)], via4[8:]) {
					t.Errorf("direct 4->6 is not the second pass's packet less one hop:\n got %x\nwant %x", out, via4)
				}
			}
			direct("TCP 4->6", tcp4, false)
			// to the clients: the client network is on lan0, no gateway needed
			out = direct("UDP 6->4", udp6, true)
			if out[8] != 62 || header.Checksum(out[:20], 0) != 0 {
				t.Errorf("direct 6->4: TTL %d (want 62: the translator's hop and the second pass's), header %x", out[8], out[:20])
			}
			direct("echo reply 6->4", echo6, true)

			if err := p.SetRoamed([]netip.Addr{client}); err != nil {
				t.Fatal(err)
			}
			direct("UDP 4->6 of a client that roamed here", udp4, false)
			direct("UDP 6->4 to a client that roamed here", udp6, true) // netfilter had them before the TUN
			other := netip.MustParseAddr("10.130.7.10")
			direct("UDP 4->6 of another client", ipv4(other, remote, header.ProtoUDP, 64, 0, true, l4(header.ProtoUDP, other, remote, 0, nil)), want)
			if err := p.SetRoamed(nil); err != nil {
				t.Fatal(err)
			}
			direct("UDP 4->6 of the client, gone on", udp4, want)

			many := make([]netip.Addr, RoamedMax+1)
			for i := range many {
				many[i] = netip.AddrFrom4([4]byte{10, 130, byte(i >> 8), byte(i)})
			}
			if err := p.SetRoamed(many); err == nil {
				t.Error("SetRoamed took more than RoamedMax clients")
			}
			direct("UDP 6->4 with too many roamed clients", udp6, false)
			if err := p.SetRoamed(many[:2]); err != nil {
				t.Fatal(err)
			}
			direct("UDP 6->4 with two roamed clients", udp6, true)
		})
	}
}

// TestEarlySendsClientsUDPAndEchoBeforeTheIPv4Pass: at the clients'
// device's ingress (AttachEarly) the program sends what it would send
// direct from the TUN's egress, one IPv4 forwarding hop earlier: the same
// packet as the egress makes of the client's packet forwarded (TTL one
// less). Everything else it leaves exactly as it came, for the stack.
func TestEarlySendsClientsUDPAndEchoBeforeTheIPv4Pass(t *testing.T) {
	netlab.InPrivateNetns(t, func() {
		dev, lan := directLab(t, true)
		p := loadForTest(t)
		cfg := fastConfig()
		cfg.Direct, cfg.TUNIndex, cfg.EarlyIndex = true, dev, lan
		if err := p.SetConfig(cfg); err != nil {
			t.Fatal(err)
		}
		payload := []byte("early")
		udp := func(ttl uint8) []byte {
			return ipv4(client, remote, header.ProtoUDP, ttl, 0x2e, true, l4(header.ProtoUDP, client, remote, 0, payload))
		}
		echo := func(ttl uint8) []byte {
			return ipv4(client, remote, header.ProtoICMP, ttl, 0, false, l4(header.ProtoICMP, client, remote, 8, payload))
		}
		for _, c := range []struct {
			name string
			pkt  func(uint8) []byte
		}{{"UDP", udp}, {"echo request", echo}} {
			v, early := runOn(t, p, lan, c.pkt(64))
			early = append([]byte(nil), early...)
			if v != actRedirect {
				t.Fatalf("%s: verdict %d at the clients' device", c.name, v)
			}
			_, egress := runOn(t, p, dev, c.pkt(63)) // forwarded by the stack: one hop less
			if !bytes.Equal(early, egress) {
				t.Errorf("%s at the clients' device is not what the TUN's egress makes of it forwarded:\n got %x\nwant %x", c.name, early, egress)
			}
			if early[7] != 61 {
				t.Errorf("%s: hop limit %d, want 61 (forwarded, translated, forwarded)", c.name, early[7])
			}
		}
		other := netip.MustParseAddr("192.0.2.7")
		left := []struct {
			name string
			pkt  []byte
		}{
			{"TCP", ipv4(client, remote, header.ProtoTCP, 64, 0, true, l4(header.ProtoTCP, client, remote, 0x10, payload))},
			{"TTL 3", udp(3)},
			{"to a network on the clients' side", ipv4(client, other, header.ProtoUDP, 64, 0, true, l4(header.ProtoUDP, client, other, 0, payload))},
			{"to the node itself", ipv4(client, netip.MustParseAddr("10.130.0.1"), header.ProtoUDP, 64, 0, true, l4(header.ProtoUDP, client, netip.MustParseAddr("10.130.0.1"), 0, payload))},
			{"an ICMP error", ipv4(client, remote, header.ProtoICMP, 64, 0, false, l4(header.ProtoICMP, client, remote, 3, payload))},
			{"bad header checksum", func() []byte { b := udp(64); b[10] ^= 1; return b }()},
		}
		if err := p.SetRoamed([]netip.Addr{client}); err != nil {
			t.Fatal(err)
		}
		left = append(left, struct {
			name string
			pkt  []byte
		}{"UDP of a client that roamed here", udp(64)})
		before := p.Counters()
		for _, c := range left {
			v, out := runOn(t, p, lan, c.pkt)
			if v != actOK || !bytes.Equal(out[:len(c.pkt)], c.pkt) {
				t.Errorf("%s: verdict %d, packet %x, want it left alone (%x)", c.name, v, out[:len(c.pkt)], c.pkt)
			}
		}
		if after := p.Counters(); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("packets left alone at the clients' device were counted: %v -> %v", before, after)
		}
		if err := p.SetRoamed(nil); err != nil {
			t.Fatal(err)
		}

		// Mutations: each is left exactly as it came, or made into what the
		// TUN's egress makes of it forwarded.
		rng := rand.New(rand.NewSource(6145))
		seeds := [][]byte{udp(64), echo(9)}
		sent := 0
		for i := 0; i < 20000 && !t.Failed(); i++ {
			pkt := mutant(rng, seeds[i%len(seeds)])
			v, out, err := tryOn(p, lan, pkt)
			if errors.Is(err, unix.EINVAL) && (len(pkt) < 20 || pkt[0]>>4 != 4) {
				continue // a test run needs the IP header whole; the device gets no other
			}
			if err != nil {
				t.Fatalf("mutation %d: test run: %v", i, err)
			}
			switch v {
			case actOK:
				if !bytes.Equal(out[:len(pkt)], pkt) {
					t.Errorf("mutation %d left to the stack changed:\n in  %x\n out %x", i, pkt, out)
				}
			case actRedirect:
				sent++
				out = append([]byte(nil), out...)
				fwd := append([]byte(nil), pkt...)
				fwd[8]--
				fwd[10], fwd[11] = 0, 0
				binary.BigEndian.PutUint16(fwd[10:], header.Checksum(fwd[:20], 0))
				if _, want := runOn(t, p, dev, fwd); !bytes.Equal(out, want) {
					t.Errorf("mutation %d:\n in   %x\n got  %x\n want %x", i, pkt, out, want)
				}
			default:
				t.Errorf("mutation %d: verdict %d", i, v)
			}
		}
		t.Logf("%d of 20000 mutations sent early", sent)
	})
}

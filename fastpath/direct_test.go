package fastpath

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"

	"github.com/gluon-464xlat/gluon-464xlat/header"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// inPrivateNetns runs f on a thread of its own in a new network namespace
// (the thread dies with it).
func inPrivateNetns(t *testing.T, f func()) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // no unlock: the thread ends with the namespace
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			t.Errorf("unshare: %v", err)
			return
		}
		f()
	}()
	<-done
}

// directLab is a node's routing in a private namespace: "clat" (a veth
// standing in for the TUN: the program only needs its index), the mesh
// behind mesh0 with the PLAT /96 via a neighbour (or, gw false, on the
// link, as an exit's own PLAT is), and the clients on lan0.
func directLab(t *testing.T, gw bool) (clatIdx int) {
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
	return c.Attrs().Index
}

func mustNet(s string) *net.IPNet {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	n.IP = ip
	return n
}

// runOn runs an IP packet through the program as leaving dev, and returns
// the verdict and the IP packet it made.
func runOn(t *testing.T, p *Program, dev int, pkt []byte) (uint32, []byte) {
	t.Helper()
	eth := make([]byte, 14, 14+len(pkt))
	eth[12], eth[13] = 0x08, 0x00
	if pkt[0]>>4 == 6 {
		eth[12], eth[13] = 0x86, 0xdd
	}
	v, out, err := p.TestRunOn(dev, append(eth, pkt...), 0)
	if err != nil {
		t.Fatalf("test run: %v", err)
	}
	return v, out[14:]
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
		inPrivateNetns(t, func() {
			dev := directLab(t, gw)
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

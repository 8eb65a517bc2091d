package ctguard

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"

	"github.com/gluon-464xlat/gluon-464xlat/internal/bpfload"
	"github.com/gluon-464xlat/gluon-464xlat/internal/netlab"
)

var (
	client = netip.MustParseAddr("198.18.0.2")   // in the pool
	other  = netip.MustParseAddr("192.0.2.9")    // not in the pool
	server = netip.MustParseAddr("198.51.100.1") // a destination
	wan    = netip.MustParseAddr("203.0.113.1")  // the SNAT's address
)

// snat is a session of src to server:port as platd's SNAT leaves it: the
// reply goes to the WAN address (nat false: to src itself).
func snat(proto uint8, src netip.Addr, sport, port uint16, nat bool) conntrack.Flow {
	f := conntrack.NewFlow(proto, 0, src, server, sport, port, 120, 0)
	if proto == unix.IPPROTO_ICMP {
		f.TupleOrig.Proto = conntrack.ProtoTuple{Protocol: proto, ICMPv4: true, ICMPID: sport, ICMPType: 8}
		f.TupleReply.Proto = conntrack.ProtoTuple{Protocol: proto, ICMPv4: true, ICMPID: sport, ICMPType: 0}
	}
	if nat {
		f.TupleReply.IP.DestinationAddress = wan
		if proto != unix.IPPROTO_ICMP {
			f.TupleReply.Proto.DestinationPort = 61000 + sport
		}
	}
	return f
}

// watcher is a netlink socket on conntrack's new and destroy events with
// the filter attached.
func watcher(t *testing.T, c *Counter) int {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_NETFILTER)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Attach(fd); err != nil {
		t.Fatalf("attach: %v", err)
	}
	groups := uint32(1<<(unix.NFNLGRP_CONNTRACK_NEW-1) | 1<<(unix.NFNLGRP_CONNTRACK_DESTROY-1))
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: groups}); err != nil {
		t.Fatal(err)
	}
	return fd
}

// passed is the events the filter let into the socket since the last
// call: their message types and destination addresses. The kernel
// delivers an event before the request that caused it returns.
func passed(fd int) (types []int, dsts []netip.Addr) {
	buf := make([]byte, 8192)
	for {
		n, err := unix.Read(fd, buf)
		if err != nil {
			return types, dsts
		}
		if n >= 44 {
			types = append(types, int(binary.NativeEndian.Uint16(buf[4:])&0xff))
			dsts = append(dsts, netip.AddrFrom4([4]byte(buf[40:44])))
		}
	}
}

// The filter counts, per destination, the pool's sessions that the SNAT
// gave another address (UDP and TCP by port, ICMP as port 0), nothing
// else, and lets through exactly the events at which a destination
// reaches the limit unrefused and falls below the resume mark refused.
func TestFilterCountsSNATedPoolSessionsAndPassesOnlyCrossings(t *testing.T) {
	netlab.InPrivateNetns(t, func() {
		c, err := Load(netip.MustParsePrefix("198.18.0.0/16"), 5, 3)
		if err != nil {
			t.Fatalf("load: %v", err)
		}
		defer c.Close()
		fd := watcher(t, c)
		defer unix.Close(fd)
		ct, err := conntrack.Dial(nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ct.Close()
		create := func(fs ...conntrack.Flow) {
			t.Helper()
			for _, f := range fs {
				if err := ct.Create(f); err != nil {
					t.Fatalf("create: %v", err)
				}
			}
		}
		dns := Dest{Addr: server.As4(), Proto: unix.IPPROTO_UDP, Port: 53}
		var flows []conntrack.Flow
		for i := uint16(0); i < 6; i++ {
			flows = append(flows, snat(unix.IPPROTO_UDP, client, 1000+i, 53, true))
		}
		// not counted: not NATed, not from the pool, IPv6
		v6 := conntrack.NewFlow(unix.IPPROTO_UDP, 0, netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2"), 1, 53, 120, 0)
		create(snat(unix.IPPROTO_UDP, client, 2000, 53, false), snat(unix.IPPROTO_UDP, other, 2001, 53, true), v6)
		create(flows[:4]...)
		if n := c.Count(dns); n != 4 {
			t.Errorf("after 4 sessions: count %d, want 4", n)
		}
		if ty, _ := passed(fd); len(ty) != 0 {
			t.Errorf("below the limit: %d events passed, want none", len(ty))
		}
		create(flows[4])
		if ty, dst := passed(fd); len(ty) != 1 || ty[0] != 0 || dst[0] != server {
			t.Errorf("at the limit (5): passed %v to %v, want one new event (type 0) to %v", ty, dst, server)
		}
		if err := c.SetFull(dns, true); err != nil {
			t.Fatal(err)
		}
		create(flows[5])
		if ty, _ := passed(fd); len(ty) != 0 || c.Count(dns) != 6 {
			t.Errorf("refused and above the limit: passed %v, count %d; want none, 6", ty, c.Count(dns))
		}
		for _, f := range flows[:3] { // 3: not below resume yet
			if err := ct.Delete(f); err != nil {
				t.Fatal(err)
			}
		}
		if ty, _ := passed(fd); len(ty) != 0 || c.Count(dns) != 3 {
			t.Errorf("at the resume mark: passed %v, count %d; want none, 3", ty, c.Count(dns))
		}
		if err := ct.Delete(flows[3]); err != nil {
			t.Fatal(err)
		}
		if ty, dst := passed(fd); len(ty) != 1 || ty[0] != 2 || dst[0] != server {
			t.Errorf("below the resume mark: passed %v to %v, want one destroy event (type 2)", ty, dst)
		}
		c.SetFull(dns, false)
		for _, f := range flows[4:] {
			ct.Delete(f)
		}
		if n := len(passed2(fd)); n != 0 || c.Count(dns) != 0 {
			t.Errorf("all gone: passed %d, count %d; want none, 0", n, c.Count(dns))
		}
		// by protocol and port: TCP to 53 and ICMP (port 0) apart from UDP
		create(snat(unix.IPPROTO_TCP, client, 3000, 53, true), snat(unix.IPPROTO_TCP, client, 3001, 53, true),
			snat(unix.IPPROTO_ICMP, client, 77, 0, true), snat(unix.IPPROTO_UDP, client, 3002, 443, true))
		want := map[Dest]int32{
			{Addr: server.As4(), Proto: unix.IPPROTO_TCP, Port: 53}:  2,
			{Addr: server.As4(), Proto: unix.IPPROTO_ICMP, Port: 0}:  1,
			{Addr: server.As4(), Proto: unix.IPPROTO_UDP, Port: 443}: 1,
		}
		keys := 0
		for d, n := range want {
			if got := c.Count(d); got != n {
				t.Errorf("%+v: count %d, want %d", d, got, n)
			}
		}
		for range keysOf(c) {
			keys++
		}
		if keys != len(want) {
			t.Errorf("the map holds %d destinations, want %d (one at 0 is deleted)", keys, len(want))
		}
		if u, f := c.Stats(); u != 0 || f != 0 {
			t.Errorf("stats: unparsed %d, map full %d; want 0, 0", u, f)
		}
		// a recount replaces the counts
		c.Reset(map[Dest]int32{dns: 4})
		if c.Count(dns) != 4 || c.Count(Dest{Addr: server.As4(), Proto: unix.IPPROTO_TCP, Port: 53}) != 0 || len(keysOf(c)) != 1 {
			t.Errorf("after Reset: %d destinations, dns %d; want 1, 4", len(keysOf(c)), c.Count(dns))
		}
	})
}

func passed2(fd int) []int { ty, _ := passed(fd); return ty }

func keysOf(c *Counter) []Dest {
	var ds []Dest
	for _, k := range bpfload.MapKeys(c.counts, destSize) {
		ds = append(ds, destOf(k))
	}
	return ds
}

// Both objects (bpfel for amd64, arm, mipsle; bpfeb for mips) get their
// four map references pointed at the maps. Runs on any machine.
func TestRelocationInBothByteOrders(t *testing.T) {
	for _, c := range []struct {
		name  string
		obj   []byte
		order binary.ByteOrder
	}{{"bpfel", objLE, binary.LittleEndian}, {"bpfeb", objBE, binary.BigEndian}} {
		fds := map[string]int{"guard_cfg": 1001, "guard_counts": 1002, "guard_full": 1003, "guard_stats": 1004}
		insns, err := bpfload.Relocate(c.obj, c.order, "socket", fds)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		seen := bpfload.MapFDs(insns, c.order)
		if len(seen) != 4 || seen[1001] == 0 || seen[1002] == 0 || seen[1003] == 0 || seen[1004] == 0 {
			t.Errorf("%s: map references to fds %v, want 1001-1004", c.name, seen)
		}
	}
}

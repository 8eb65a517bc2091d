package tun

import (
	"encoding/binary"
	"net"
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/gluon-464xlat/gluon-464xlat/header"
)

// BenchmarkRoundTrip is what the TUN path costs a packet besides its
// translation: written into a TUN, forwarded by the kernel back out of
// it, read again (two system calls, a wake-up, a pass through the
// stack). In a network namespace of its own. make bench-mips sets it
// against the fast path's program in the kernel, under qemu.
func BenchmarkRoundTrip(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	// (the locked thread ends with the benchmark's goroutine: its network
	// namespace goes with it)
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		b.Skip("no network namespace:", err)
	}
	// (no IPv6 on it: its router solicitations would come back instead)
	if err := os.WriteFile("/proc/sys/net/ipv6/conf/default/disable_ipv6", []byte("1"), 0); err != nil {
		b.Fatal(err)
	}
	d, err := Open("bt0", 1, false)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	for _, s := range [][2]string{{"ipv4/ip_forward", "1"}, {"ipv4/conf/all/send_redirects", "0"},
		{"ipv4/conf/bt0/send_redirects", "0"}, {"ipv4/conf/all/rp_filter", "0"}} {
		if err := os.WriteFile("/proc/sys/net/"+s[0], []byte(s[1]), 0); err != nil {
			b.Fatal(err)
		}
	}
	link, err := netlink.LinkByName("bt0")
	if err != nil {
		b.Fatal(err)
	}
	addr, _ := netlink.ParseAddr("10.0.0.1/24")
	_, dst, _ := net.ParseCIDR("192.0.2.0/24")
	if err := netlink.LinkSetUp(link); err != nil {
		b.Fatal(err)
	}
	if err := netlink.AddrAdd(link, addr); err != nil {
		b.Fatal(err)
	}
	if err := netlink.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Dst: dst}); err != nil {
		b.Fatal(err)
	}
	// UDP, 64 bytes, 10.0.0.2 -> 192.0.2.1
	pkt := make([]byte, 64)
	pkt[0], pkt[8], pkt[9] = 0x45, 64, header.ProtoUDP
	binary.BigEndian.PutUint16(pkt[2:], 64)
	copy(pkt[12:], []byte{10, 0, 0, 2, 192, 0, 2, 1})
	header.IPv4(pkt).SetChecksum()
	binary.BigEndian.PutUint16(pkt[20:], 4000)
	binary.BigEndian.PutUint16(pkt[22:], 5000)
	binary.BigEndian.PutUint16(pkt[24:], 44)
	q := d.Queues[0]
	buf := make([]byte, 2048)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		copy(buf[VnetHdrLen:], pkt)
		if err := q.Write(buf, VnetHdrLen, len(pkt), header.Offload{}); err != nil {
			b.Fatal(err)
		}
		n, _, err := q.Read(buf, VnetHdrLen)
		if err != nil || n != len(pkt) || buf[VnetHdrLen+8] != 63 {
			b.Fatalf("read %d bytes (%v): %x", n, err, buf[VnetHdrLen:VnetHdrLen+n])
		}
	}
}

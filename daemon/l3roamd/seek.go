package l3roamd

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
	"golang.org/x/time/rate"
)

// Answering a SEEK as the C daemon does (intercom_handle_seek, then
// icmp6_send_solicitation and icmp6_handle_in): a node that gets a packet
// for a client address nobody announces asks the mesh with SEEK; every
// node solicits the address on its client link, and the one whose client
// answers learns the address and announces its host route, which the
// seeker then uses. The kernel's own neighbour discovery cannot do this:
// it sends no solicitation for an address it has no route to on that link,
// and ignores an advertisement it did not ask for. So a raw ICMPv6 socket
// on the client device sends the Neighbor Solicitation (RFC 4861 section
// 7.2.2, to the solicited-node group, with this node's link-layer address)
// and reads the Neighbor Advertisements. Only an answer for an address
// solicited in the last seekWait is learned: an unsolicited advertisement
// teaches nothing (a client could otherwise claim any address of the
// prefix), and the solicitations are bounded (maxPendingSeeks, seekRate),
// for a SEEK is unsigned and anybody on a mesh link can send one.
const (
	seekWait        = 3 * time.Second
	maxPendingSeeks = 256
	seekRate        = 20 // solicitations per second at most, bursts of as many
)

// ndp is the raw ICMPv6 socket on the client device, opened on the first
// SEEK (the device may come later than the daemon) and again after an error.
type ndp struct {
	mu      sync.Mutex
	pc      *ipv6.PacketConn
	mac     net.HardwareAddr
	pending map[netip.Addr]time.Time // solicited addresses -> until when an answer counts
	limit   *rate.Limiter            // seekRate
}

// onSeek solicits a sought address on the client link if it is one of the
// client prefixes' (the C daemon sends ARP for IPv4: this daemon's IPv4
// clients are found by their DHCP and ARP traffic, and a SEEK for one is
// counted and left).
func (d *daemon) onSeek(addr netip.Addr) {
	if addr.Is4In6() || addr.Is4() {
		d.inc("seek_ipv4_not_solicited")
		return
	}
	if !d.isClientIP6(addr) {
		d.drop("seek_not_client_prefix", addr, errors.New("not in a client prefix"))
		return
	}
	if err := d.solicit(addr); err != nil {
		d.drop("seek_not_solicited", addr, err)
		return
	}
	d.inc("seek_solicited")
}

// solicit sends a Neighbor Solicitation for addr on the client device.
func (d *daemon) solicit(addr netip.Addr) error {
	n := &d.ndp
	n.mu.Lock()
	defer n.mu.Unlock()
	now := time.Now()
	for a, until := range n.pending {
		if now.After(until) {
			delete(n.pending, a)
		}
	}
	if _, ok := n.pending[addr]; !ok && len(n.pending) >= maxPendingSeeks {
		return errors.New("too many solicitations pending")
	}
	if !n.limit.Allow() {
		return errors.New("rate limit")
	}
	if n.pc == nil {
		if err := d.openNDP(); err != nil {
			return err
		}
	}
	if _, err := n.pc.WriteTo(neighborSolicitation(addr, n.mac), nil,
		&net.IPAddr{IP: solicitedNode(addr).AsSlice(), Zone: d.c.clientDev}); err != nil {
		n.pc.Close()
		n.pc = nil
		return err
	}
	n.pending[addr] = now.Add(seekWait)
	return nil
}

// openNDP opens the raw socket (n.mu held) and starts its reader.
func (d *daemon) openNDP() error {
	n := &d.ndp
	link, err := netlink.LinkByName(d.c.clientDev)
	if err != nil {
		return err
	}
	c, err := net.ListenPacket("ip6:ipv6-icmp", "::")
	if err != nil {
		return err
	}
	pc := ipv6.NewPacketConn(c)
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeNeighborAdvertisement)
	raw, err := c.(*net.IPConn).SyscallConn()
	if err == nil {
		err = errors.Join(pc.SetICMPFilter(&f), pc.SetMulticastHopLimit(255), pc.SetHopLimit(255),
			pc.SetControlMessage(ipv6.FlagHopLimit, true))
	}
	if err == nil {
		raw.Control(func(fd uintptr) { err = unix.BindToDevice(int(fd), d.c.clientDev) })
	}
	if err != nil {
		c.Close()
		return fmt.Errorf("neighbour discovery socket on %s: %w", d.c.clientDev, err)
	}
	n.pc, n.mac = pc, link.Attrs().HardwareAddr
	if n.pending == nil {
		n.pending = map[netip.Addr]time.Time{}
	}
	d.wg.Add(1)
	go d.readAdvertisements(pc)
	return nil
}

// readAdvertisements learns the clients that answer a solicitation until
// the socket is closed (stop, or an error that reopens it).
func (d *daemon) readAdvertisements(pc *ipv6.PacketConn) {
	defer d.wg.Done()
	// closes pc on stop; ends with this reader when an error reopened the socket
	exited := make(chan struct{})
	defer close(exited)
	go func() {
		select {
		case <-d.done:
			pc.Close()
		case <-exited:
		}
	}()
	buf := make([]byte, 1500)
	for {
		n, cm, _, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		// RFC 4861 section 7.1.2: a Neighbor Advertisement comes with Hop Limit 255
		if cm == nil || cm.HopLimit != 255 {
			continue
		}
		target, mac, ok := parseNeighborAdvertisement(buf[:n])
		if !ok {
			continue
		}
		d.ndp.mu.Lock()
		until, asked := d.ndp.pending[target]
		if asked {
			delete(d.ndp.pending, target)
		}
		d.ndp.mu.Unlock()
		if !asked || time.Now().After(until) {
			d.inc("advertisements_not_solicited")
			continue
		}
		slog.Info("a sought address answered here", "ip", target, "mac", mac.String())
		d.inc("seek_answered_here")
		d.learn(mac, target)
	}
}

// solicitedNode is addr's solicited-node multicast group (RFC 4291 section 2.7.1).
func solicitedNode(addr netip.Addr) netip.Addr {
	a := addr.As16()
	return netip.AddrFrom16([16]byte{0xff, 0x02, 10: 0, 11: 1, 12: 0xff, 13: a[13], 14: a[14], 15: a[15]})
}

// neighborSolicitation is an NS for target with the source link-layer
// address option (RFC 4861 section 4.3); the kernel fills the checksum of a
// raw ICMPv6 socket's messages.
func neighborSolicitation(target netip.Addr, mac net.HardwareAddr) []byte {
	b := make([]byte, 32)
	b[0] = byte(ipv6.ICMPTypeNeighborSolicitation)
	t := target.As16()
	copy(b[8:24], t[:])
	b[24], b[25] = 1, 1 // source link-layer address, 8 bytes
	copy(b[26:32], mac)
	return b
}

// parseNeighborAdvertisement returns an NA's target and its target
// link-layer address option (RFC 4861 section 4.4: an answer to a
// multicast solicitation carries it).
func parseNeighborAdvertisement(b []byte) (netip.Addr, net.HardwareAddr, bool) {
	if len(b) < 24 || b[0] != byte(ipv6.ICMPTypeNeighborAdvertisement) || b[1] != 0 {
		return netip.Addr{}, nil, false
	}
	target := netip.AddrFrom16([16]byte(b[8:24]))
	for opts := b[24:]; len(opts) >= 8; {
		l := int(opts[1]) * 8
		if l == 0 || l > len(opts) {
			break
		}
		if opts[0] == 2 && l == 8 && opts[2]&1 == 0 {
			return target, net.HardwareAddr(append([]byte(nil), opts[2:8]...)), true
		}
		opts = opts[l:]
	}
	return netip.Addr{}, nil, false
}

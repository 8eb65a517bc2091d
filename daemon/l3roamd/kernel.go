package l3roamd

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// clientKernel is what the client state machine (clients.go, intercom.go)
// asks of the kernel for the clients this node serves. netlinkKernel does
// it on the client device; the unit tests record it instead, so that the
// state machine is tested for every message and timer without a kernel
// (the e2e tests run it against the real one).
type clientKernel interface {
	// serve puts the node-client IP on the client device, a reachable
	// neighbour entry for each address (the seed: "sets an ARP entry for
	// the client's MAC address"), and a host route for each IPv6 address.
	serve(mac net.HardwareAddr, nodeClient, ip4 netip.Addr, ip6 []netip.Addr) error
	// release undoes serve, and removes the bridge's entry for mac, so
	// that a return of the client is seen as new.
	release(mac net.HardwareAddr, nodeClient, ip4 netip.Addr, ip6 []netip.Addr)
	// bridgeMACs is the set of MACs in the client bridge's forwarding
	// database (nil: no bridge, or it cannot be read).
	bridgeMACs() map[string]bool
	// probe has the kernel verify that ip is at mac (NUD_PROBE).
	probe(ip netip.Addr, mac net.HardwareAddr) error
	hasHostRoute(ip netip.Addr) bool
	isLocalMAC(mac net.HardwareAddr) bool
}

// netlinkKernel is clientKernel on the node's client device and bridge.
type netlinkKernel struct {
	clientDev, clientBridge string
	exportTable             int
}

func host(a netip.Addr) *net.IPNet {
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(a.BitLen(), a.BitLen())}
}

func family(a netip.Addr) int {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

func (k *netlinkKernel) serve(mac net.HardwareAddr, nc, ip4 netip.Addr, ip6 []netip.Addr) error {
	link, err := netlink.LinkByName(k.clientDev)
	if err != nil {
		return fmt.Errorf("client device: %w", err)
	}
	if err := netlink.AddrReplace(link, &netlink.Addr{IPNet: host(nc), Flags: unix.IFA_F_NODAD}); err != nil {
		slog.Warn("node-client IP", "ip", nc, "err", err)
	}
	// A neighbour entry left from the client's last stay (or from traffic
	// for it while it was away) would make the kernel resolve it again
	// first, and TCP backs off meanwhile.
	for _, a := range append(append([]netip.Addr(nil), ip6...), ip4) {
		if !a.IsValid() {
			continue
		}
		n := &netlink.Neigh{LinkIndex: link.Attrs().Index, IP: a.AsSlice(), HardwareAddr: mac, State: netlink.NUD_REACHABLE, Family: family(a)}
		if err := netlink.NeighSet(n); err != nil {
			slog.Debug("neighbour entry", "ip", a, "err", err)
		}
	}
	for _, a := range ip6 {
		r := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: host(a), Table: k.exportTable, Protocol: routeProto, Priority: routeMetric}
		if err := netlink.RouteReplace(r); err != nil {
			slog.Warn("host route", "ip", a, "err", err)
		}
	}
	return nil
}

func (k *netlinkKernel) release(mac net.HardwareAddr, nc, ip4 netip.Addr, ip6 []netip.Addr) {
	link, err := netlink.LinkByName(k.clientDev)
	if err != nil {
		return
	}
	netlink.AddrDel(link, &netlink.Addr{IPNet: host(nc)})
	for _, a := range ip6 {
		netlink.RouteDel(&netlink.Route{LinkIndex: link.Attrs().Index, Dst: host(a), Table: k.exportTable, Protocol: routeProto})
	}
	for _, ip := range append(append([]netip.Addr(nil), ip6...), ip4) {
		if ip.IsValid() {
			netlink.NeighDel(&netlink.Neigh{LinkIndex: link.Attrs().Index, IP: ip.AsSlice()})
		}
	}
	for _, n := range k.fdb() {
		if n.HardwareAddr.String() == mac.String() {
			netlink.NeighDel(&n)
		}
	}
}

// fdb is the client bridge's forwarding database (nil when the client
// bridge is not a bridge or cannot be read). The bridge is looked up once,
// not per entry: a crowd leaves thousands of entries.
func (k *netlinkKernel) fdb() []netlink.Neigh {
	br, err := netlink.LinkByName(k.clientBridge)
	if err != nil || br.Type() != "bridge" {
		return nil
	}
	fdb, err := netlink.NeighList(0, unix.AF_BRIDGE)
	if err != nil {
		return nil
	}
	return slices.DeleteFunc(fdb, func(n netlink.Neigh) bool { return n.MasterIndex != br.Attrs().Index })
}

func (k *netlinkKernel) bridgeMACs() map[string]bool {
	fdb := k.fdb()
	if fdb == nil {
		return nil
	}
	have := map[string]bool{}
	for _, n := range fdb {
		have[n.HardwareAddr.String()] = true
	}
	return have
}

func (k *netlinkKernel) probe(ip netip.Addr, mac net.HardwareAddr) error {
	link, err := netlink.LinkByName(k.clientDev)
	if err != nil {
		return err
	}
	return netlink.NeighSet(&netlink.Neigh{LinkIndex: link.Attrs().Index, IP: ip.AsSlice(), HardwareAddr: mac, State: netlink.NUD_PROBE, Family: family(ip)})
}

// hasHostRoute reports a /128 route to ip in any table.
func (k *netlinkKernel) hasHostRoute(ip netip.Addr) bool {
	rs, err := netlink.RouteListFiltered(unix.AF_INET6, &netlink.Route{Dst: host(ip), Table: unix.RT_TABLE_UNSPEC},
		netlink.RT_FILTER_DST|netlink.RT_FILTER_TABLE)
	return err == nil && len(rs) > 0
}

// isLocalMAC reports whether mac is one of this node's own devices'.
func (k *netlinkKernel) isLocalMAC(mac net.HardwareAddr) bool {
	links, err := netlink.LinkList()
	if err != nil {
		return false
	}
	return slices.ContainsFunc(links, func(l netlink.Link) bool { return bytes.Equal(l.Attrs().HardwareAddr, mac) })
}

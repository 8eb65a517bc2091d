package l3roamd

import (
	"log/slog"
	"net"
	"net/netip"
	"time"
)

// After this node hands a client over, its babeld may have no route to
// the client's addresses (and node-client IP) at all: babeld 1.13.1's
// flush_xroute, on the removal of the host routes it redistributed, looks
// the Babel route up again with the prefix length of its table's first
// xroute instead of the removed one's, so the route the client's new node
// announced is not installed until an update for it changes something
// (Debian's 1.12.1 does not look it up at all). When the new node
// announced before this node released the client, as the C l3roamd does
// (it routes a client's address as soon as it sees it, then claims), the
// mesh's traffic to the client through this node is dropped for seconds:
// 2.6-3.2 s to reach a client that moved onto a C node in the mixed mesh
// test. A Babel route request (RFC 8966 section 4.6.9) for each such
// address makes the neighbours send an update for it, which babeld here
// takes as a reason to reconsider the route (route_changed ->
// consider_route) and installs it.

const (
	babelPort     = 6696
	babelMagic    = 42
	babelVersion  = 2
	babelTLVRoute = 9 // Route Request
	babelAEIPv6   = 2
)

var babelGroup = netip.MustParseAddr("ff02::1:6")

// babelRouteRequest is a Babel packet (RFC 8966 section 4.2) of one Route
// Request TLV (section 4.6.9) per address, each for its /128.
func babelRouteRequest(addrs []netip.Addr) []byte {
	b := []byte{babelMagic, babelVersion, 0, 0}
	for _, a := range addrs {
		x := a.As16()
		b = append(append(b, babelTLVRoute, 2+16, babelAEIPv6, 128), x[:]...)
	}
	body := len(b) - 4
	b[2], b[3] = byte(body>>8), byte(body)
	return b
}

// requestRoutesAfterRelease waits for babeld to install routes to what
// this node released, and asks the neighbours for an update of those it
// did not (d.k says which have a route).
func (d *daemon) requestRoutesAfterRelease(addrs []netip.Addr) {
	select {
	case <-d.done:
		return
	case <-time.After(releaseSettle):
	}
	var missing []netip.Addr
	for _, a := range addrs {
		if !d.k.hasHostRoute(a) {
			missing = append(missing, a)
		}
	}
	if len(missing) == 0 {
		return
	}
	d.inc("babel_route_requests")
	b := babelRouteRequest(missing)
	for _, name := range d.upMeshIfs() {
		c, err := net.DialUDP("udp6", nil, &net.UDPAddr{IP: babelGroup.AsSlice(), Port: babelPort, Zone: name})
		if err != nil {
			slog.Debug("Babel route request", "if", name, "err", err)
			continue
		}
		c.Write(b)
		c.Close()
	}
}

// releaseSettle: how long babeld gets to install the new node's routes by
// itself before the neighbours are asked.
const releaseSettle = 50 * time.Millisecond

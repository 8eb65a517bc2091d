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
// test. Asking the neighbours for an update of each such address makes
// babeld here reconsider the route (route_changed -> consider_route) and
// install it.
//
// The question is a seqno request (RFC 8966 section 4.6.10), not a route
// request (4.6.9): babeld answers a route request with an ordinary update,
// flushed after its jitter of 3/4 to 5/4 of the hello interval capped at 4
// s (update_jitter), but a seqno request with an urgent one (75-125 ms).
// The request names a router-id no node has, so no node increases its
// seqno for it (nothing to propagate through the mesh), hop count 1, so
// the neighbours answer and do not forward it. It is repeated while the
// route is missing: the new node may route the client only after it has
// seen the client's own traffic (the C l3roamd does), later than the
// release, and its babeld then announces with the ordinary jitter too.
const (
	babelPort     = 6696
	babelMagic    = 42
	babelVersion  = 2
	babelTLVSeqno = 10 // Seqno Request
	babelAEIPv6   = 2
)

var babelGroup = netip.MustParseAddr("ff02::1:6")

// babelSeqnoRequest is a Babel packet (RFC 8966 section 4.2) of one
// Seqno Request TLV (section 4.6.10) per address, each for its /128: seqno
// 0, hop count 1, router-id 0 (no node's: nobody bumps its seqno).
func babelSeqnoRequest(addrs []netip.Addr) []byte {
	b := []byte{babelMagic, babelVersion, 0, 0}
	for _, a := range addrs {
		x := a.As16()
		b = append(b, babelTLVSeqno, 14+16, babelAEIPv6, 128,
			0, 0, // seqno
			1, 0, // hop count, reserved
			0, 0, 0, 0, 0, 0, 0, 0) // router-id
		b = append(b, x[:]...)
	}
	body := len(b) - 4
	b[2], b[3] = byte(body>>8), byte(body)
	return b
}

// requestRoutesAfterRelease waits for babeld to install routes to what
// this node released, and asks the neighbours for an update of those it
// did not (d.k says which have a route), again and again until it has
// them or releaseAskFor has passed.
func (d *daemon) requestRoutesAfterRelease(addrs []netip.Addr) {
	d.mu.Lock()
	if d.asking >= maxAsking {
		d.count["babel_requests_skipped"]++
		d.mu.Unlock()
		return
	}
	d.asking++
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.asking--
		d.mu.Unlock()
	}()
	deadline := time.Now().Add(releaseAskFor)
	wait := releaseSettle
	for {
		select {
		case <-d.done:
			return
		case <-time.After(wait):
		}
		wait = releaseAskEvery
		var missing []netip.Addr
		for _, a := range addrs {
			if !d.k.hasHostRoute(a) {
				missing = append(missing, a)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			return
		}
		d.inc("babel_seqno_requests")
		b := babelSeqnoRequest(missing)
		for _, name := range d.upMeshIfs() {
			c, err := net.DialUDP("udp6", nil, &net.UDPAddr{IP: babelGroup.AsSlice(), Port: babelPort, Zone: name})
			if err != nil {
				slog.Debug("Babel seqno request", "if", name, "err", err)
				continue
			}
			c.Write(b)
			c.Close()
		}
	}
}

// releaseSettle: how long babeld gets to install the new node's routes by
// itself before the neighbours are asked.
// releaseAskEvery and releaseAskFor: how often and how long it asks again
// (the new node's own announcement comes within 5 s in any case).
const (
	releaseSettle   = 50 * time.Millisecond
	releaseAskEvery = 200 * time.Millisecond
	releaseAskFor   = 5 * time.Second
	maxAsking       = 8 // loops at once: a crowd leaving must not become a storm of requests
)

package l3roamd

import (
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/gluon-464xlat/gluon-464xlat/intercom"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// routeProto marks l3roamd's host routes (the C daemon's protocol number).
const routeProto = 158

// routeMetric is the metric of l3roamd's host routes: not babeld's (1024,
// the kernel's default), so that both can be in the table at once. With
// the same metric, babeld's install of the route a client's new node
// announces failed with EEXIST while this node still had its own (the new
// node's announcement can come before its CLAIM), babeld took the route
// as installed, and when this node released the client there was no
// route at all: a client that came back to a C node was unreachable from
// here for good (seen in the mixed mesh test on the third move). Lower:
// while the client is here, this node's own route wins.
const routeMetric = 512

// newClientWait: how long a claim with no route to the client's
// node-client IP waits for an answer to its flood before it serves the
// client as new to the mesh.
const newClientWait = 100 * time.Millisecond

// awayGrace: how long a client whose MAC the client bridge forgot keeps
// its routes here. A node it moved to claims it within it (tens of ms);
// the C l3roamd sometimes does not claim at all: its has_host_route reads
// the first message of a socket subscribed to the route events, often an
// event instead of the reply, takes the client for new to the mesh and
// only announces it, while this node's own route kept winning for the
// whole goneGrace (a client that moved onto a C node unreachable for a
// minute, 1 in 2 runs of the mixed mesh test).
const awayGrace = time.Second

// forgetPerTick bounds the clients forgotten every 5 s (forgetGone).
const forgetPerTick = 64

// subscribeNeighbours subscribes to the neighbour and bridge FDB events,
// with a dump of what is there now (ListExisting): a new subscription is
// also a resync.
func (d *daemon) subscribeNeighbours() (chan netlink.NeighUpdate, error) {
	ch := make(chan netlink.NeighUpdate, 256)
	err := netlink.NeighSubscribeWithOptions(ch, d.done, netlink.NeighSubscribeOptions{
		ListExisting:      true,
		ReceiveBufferSize: 1 << 20, // a limit, not an allocation
		ErrorCallback:     func(err error) { slog.Warn("neighbour events", "err", err) },
	})
	return ch, err
}

// watchNeighbours learns clients from neighbour and FDB events. A burst of
// events can overflow the socket (ENOBUFS), which ends the subscription:
// it is made again (after a pause growing while it keeps failing), its
// dump catches up on what was missed, and status counts the restarts.
func (d *daemon) watchNeighbours(ch chan netlink.NeighUpdate) {
	defer d.wg.Done()
	pause := time.Second
	for {
		if ch != nil {
			d.followNeighbours(ch)
		}
		select {
		case <-d.done:
			return
		case <-time.After(pause):
		}
		d.inc("neighbour_watch_restarts")
		var err error
		if ch, err = d.subscribeNeighbours(); err != nil {
			slog.Error("subscribing to neighbour events again", "err", err)
			ch, pause = nil, min(2*pause, 10*time.Second)
			continue
		}
		slog.Warn("neighbour events: subscribed again after a failure")
		d.reconcileFDB(time.Now())
		pause = time.Second
	}
}

// followNeighbours applies one subscription's events until it ends: it
// learns clients from the client bridge, a MAC the bridge learns on one of
// its ports (any frame of a client that just arrived, like the C daemon's
// station events), then ARP for its IPv4 and NDP for its IPv6 from the
// neighbour table.
func (d *daemon) followNeighbours(ch chan netlink.NeighUpdate) {
	for {
		select {
		case <-d.done:
			return
		case u, ok := <-ch:
			if !ok {
				return
			}
			if len(u.HardwareAddr) != 6 {
				continue
			}
			if u.Type == unix.RTM_DELNEIGH {
				// the client bridge forgot a MAC: the client left
				if u.Family == unix.AF_BRIDGE && u.MasterIndex > 0 && d.isDev(u.MasterIndex, d.c.clientBridge) {
					d.markGone(u.HardwareAddr)
				}
				continue
			}
			if u.Type != unix.RTM_NEWNEIGH {
				continue
			}
			if u.Family == unix.AF_BRIDGE {
				// learned (not the ports' own, permanent) entries of the bridge;
				// on Gluon the bridge also learns the node's own local-node
				// (the next-node MAC) through its local-port: not a client
				// (a dump of the links, so only for MACs not known yet)
				if u.State&netlink.NUD_PERMANENT == 0 && u.MasterIndex > 0 && d.isDev(u.MasterIndex, d.c.clientBridge) &&
					(d.knows(u.HardwareAddr) || !d.k.isLocalMAC(u.HardwareAddr)) {
					d.learn(u.HardwareAddr, netip.Addr{})
				}
				continue
			}
			if u.State&(netlink.NUD_REACHABLE|netlink.NUD_STALE|netlink.NUD_DELAY|netlink.NUD_PROBE|netlink.NUD_PERMANENT) == 0 {
				continue
			}
			if !d.isClientDev(u.LinkIndex) {
				continue
			}
			ip, ok := netip.AddrFromSlice(u.IP)
			if !ok {
				continue
			}
			d.learn(u.HardwareAddr, ip.Unmap())
		}
	}
}

// learn notes that mac uses ip on the client device. A MAC not served
// here yet is claimed from the node that served it before.
func (d *daemon) learn(mac net.HardwareAddr, ip netip.Addr) {
	if mac[0]&1 == 1 {
		return
	}
	d.mu.Lock()
	cl, ok := d.clients[mac.String()]
	if !ok {
		if len(d.clients) >= d.c.maxClients {
			d.count["clients_cap_hit"]++
			d.mu.Unlock()
			return
		}
		cl = &client{mac: mac, claiming: true}
		d.clients[mac.String()] = cl
	}
	// Only a frame on the client bridge or a station event (no ip) says the
	// client is here. A neighbour-table event does not: the kernel reports
	// its own entries' state changes too, also those of a client that left
	// (the churn test's gone clients came back every 30 s so, for good).
	changed, reclaim := false, false
	if !ip.IsValid() {
		cl.goneSince = time.Time{} // seen again
		// back after its routes went: another node may have taken it
		// meanwhile (a C node that did not claim it): claim it again
		if cl.withdrawn {
			cl.withdrawn, cl.claiming, reclaim = false, true, true
		}
	}
	switch {
	case !ip.IsValid():
	case ip.Is4() && !ip.IsLinkLocalUnicast() && cl.ip4 != ip:
		cl.ip4, changed = ip, true
	case d.isClientIP6(ip) && !slices.Contains(cl.ip6, ip):
		if len(cl.ip6) >= d.c.maxAddrs {
			d.count["addresses_cap_hit"]++
			break
		}
		cl.ip6, changed = append(cl.ip6, ip), true
	}
	claiming, withdrawn := cl.claiming, cl.withdrawn
	d.mu.Unlock()
	if !ok || reclaim {
		slog.Info("new client, claiming it", "mac", mac.String(), "ip", ip, "back", reclaim)
		go d.claim(cl)
		return
	}
	if changed && !claiming && !withdrawn {
		d.serve(cl)
	}
}

// claim sends CLAIM to the client's node-client IP, which the node that
// served it holds (as the C daemon does), and floods it through the mesh
// too: Babel does not always route a node-client IP that just moved
// (babeld 1.13.1's flush_xroute looks the route up again with the wrong
// prefix length, so a node that released a client has no route to its new
// node until the next update changes it; 1.12.1 does not look it up at
// all), and a CLAIM lost on such a node makes the roam wait for the next
// try, or, after all tries, makes this node serve the client as new,
// cutting its IPv4 sessions (seen in `make bench-roam`'s mesh: 4 of 10
// unicast CLAIMs lost). No route at all and no answer to the flood within
// newClientWait means the client is new to the mesh; a route but no
// answer, that it is tried maxRetries times.
func (d *daemon) claim(cl *client) {
	uni := intercom.Claim(d.header(), cl.mac)
	dst := nodeClientIP(d.c.nodeClient, cl.mac)
	d.inc("claims_sent")
	claiming := func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return cl.claiming
	}
	routed := false
	for i := 0; i < maxRetries && claiming(); i++ {
		if i > 0 && !routed {
			break // nobody answered the flood: new to the mesh
		}
		routed = d.send(uni, dst, d.c.nodeIP) == nil || routed
		d.multicast(intercom.Claim(intercom.Header{TTL: floodTTL, Nonce: d.header().Nonce, Sender: d.c.nodeIP}, cl.mac))
		d.inc("claims_flooded")
		wait := claimEvery
		if !routed {
			wait = newClientWait
		}
		select {
		case <-d.done:
			return
		case <-time.After(wait):
		}
	}
	d.mu.Lock()
	was := cl.claiming
	cl.claiming = false
	d.mu.Unlock()
	if was {
		if !routed {
			d.inc("claims_unroutable")
			slog.Info("serving a client new to the mesh", "mac", cl.mac.String())
		} else {
			d.inc("claims_unanswered")
			slog.Info("no node answered the claim; serving the client", "mac", cl.mac.String(), "tries", maxRetries)
		}
		d.serve(cl)
		if routed {
			d.claimLate(cl)
		}
	}
}

// lateClaims are the waits between the CLAIMs that go on after a client
// was served unanswered: every second for 10 s, then backing off, 24 s in all.
var lateClaims = []time.Duration{time.Second, time.Second, time.Second, time.Second, time.Second,
	time.Second, time.Second, time.Second, time.Second, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}

// claimLate goes on claiming a client whose CLAIMs had a route and no
// answer (its old node busy, or its intercom flooded: seen in the e2e
// flood of forged messages, where all 15 were lost): served here already,
// it still needs the old node to release it (or that node keeps routing
// it) and to hand over its IPv4 sessions (INFO_XLAT). It stops at an INFO,
// when the client leaves, or after the last wait.
func (d *daemon) claimLate(cl *client) {
	d.mu.Lock()
	cl.lateClaim = true
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		cl.lateClaim = false
		d.mu.Unlock()
	}()
	dst := nodeClientIP(d.c.nodeClient, cl.mac)
	for _, wait := range lateClaims {
		select {
		case <-d.done:
			return
		case <-time.After(wait):
		}
		d.mu.Lock()
		still := cl.lateClaim && d.clients[cl.mac.String()] == cl && cl.goneSince.IsZero()
		d.mu.Unlock()
		if !still {
			return
		}
		d.send(intercom.Claim(d.header(), cl.mac), dst, d.c.nodeIP)
		d.multicast(intercom.Claim(intercom.Header{TTL: floodTTL, Nonce: d.header().Nonce, Sender: d.c.nodeIP}, cl.mac))
		d.inc("claims_late")
	}
}

// serve makes this node the client's: its node-client IP, neighbour
// entries and IPv6 host routes here (d.k), and 464xlat state for its IPv4
// if it has none yet (a client new to the mesh: its lease is from this
// node and its PLAT is ours).
func (d *daemon) serve(cl *client) {
	d.mu.Lock()
	ip6 := append([]netip.Addr(nil), cl.ip6...)
	ip4 := cl.ip4
	changed := false
	if ip4.IsValid() && d.c.clat.IsValid() {
		if _, ok := d.xlat[ip4]; !ok {
			left, _ := d.leaseLeft(d.readLeases(), cl.mac, ip4)
			d.xlat[ip4] = xlatState{clatd: d.c.clat, platc: d.plat, expires: time.Now().Add(left)}
			changed = true
		}
	}
	if changed {
		d.apply()
	}
	d.count["clients_served"]++
	d.mu.Unlock()
	if err := d.k.serve(cl.mac, nodeClientIP(d.c.nodeClient, cl.mac), ip4, ip6); err != nil {
		slog.Error("serving a client", "mac", cl.mac.String(), "err", err)
	}
}

// release undoes serve for a client that went to another node or left.
func (d *daemon) release(cl *client) {
	d.inc("clients_released")
	d.k.release(cl.mac, nodeClientIP(d.c.nodeClient, cl.mac), cl.ip4, cl.ip6)
}

// isClientDev reports whether ifindex is the client device.
func (d *daemon) isClientDev(ifindex int) bool { return d.isDev(ifindex, d.c.clientDev) }

// isDev reports whether ifindex is the device called name.
func (d *daemon) isDev(ifindex int, name string) bool {
	l, err := netlink.LinkByIndex(ifindex)
	return err == nil && l.Attrs().Name == name
}

// knows reports whether mac is a client already.
func (d *daemon) knows(mac net.HardwareAddr) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.clients[mac.String()]
	return ok
}

// markGone notes that the client bridge forgot mac.
func (d *daemon) markGone(mac net.HardwareAddr) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if cl, ok := d.clients[mac.String()]; ok && cl.goneSince.IsZero() {
		cl.goneSince = time.Now()
		d.gone = append(d.gone, goneClient{cl, cl.goneSince})
	}
}

// goneClient is a client the bridge forgot, and since when, in the order
// they went: withdrawGone takes them from the front.
type goneClient struct {
	cl    *client
	since time.Time
}

// withdrawGone takes out of the kernel the routes, node-client IP and
// neighbour entries of the clients gone for awayGrace by now that nobody
// claimed: the mesh then routes to wherever they announced themselves.
// Their records stay (a late CLAIM is answered, their 464xlat state
// kept); seen again, they are served again (learn). At most
// withdrawPerTick a call (every awayGrace/4): a crowd's entries ageing
// out together must not become thousands of deletions at once.
func (d *daemon) withdrawGone(now time.Time) {
	type out struct {
		mac     net.HardwareAddr
		nc, ip4 netip.Addr
		ip6     []netip.Addr
	}
	var outs []out
	d.mu.Lock()
	n := 0
	for ; n < len(d.gone) && len(outs) < withdrawPerTick && now.Sub(d.gone[n].since) >= awayGrace; n++ {
		cl := d.gone[n].cl
		if d.clients[cl.mac.String()] != cl || !cl.goneSince.Equal(d.gone[n].since) || cl.withdrawn || cl.claiming {
			continue // claimed, forgotten, back or gone again since
		}
		cl.withdrawn = true
		d.count["clients_withdrawn"]++
		outs = append(outs, out{cl.mac, nodeClientIP(d.c.nodeClient, cl.mac), cl.ip4, append([]netip.Addr(nil), cl.ip6...)})
	}
	d.gone = append(d.gone[:0], d.gone[n:]...)
	d.mu.Unlock()
	for _, o := range outs {
		slog.Info("client gone from the client bridge: its routes withdrawn", "mac", o.mac.String(), "ip6", len(o.ip6))
		d.k.release(o.mac, o.nc, o.ip4, o.ip6)
		go d.requestRoutesAfterRelease(append([]netip.Addr{o.nc}, o.ip6...))
	}
}

const withdrawPerTick = 16

// reconcileFDB marks gone the clients whose MAC the client bridge no
// longer has. The bridge's deletions arrive as events, but a burst of them
// (a crowd's entries ageing out together) overflows the neighbour socket,
// and the dump of a new subscription shows what is there, not what went:
// found with 5000 stations, of which 522 clients stayed for good. Called
// after each new subscription and every 30 s. Only for a bridge: another
// client device has no forwarding database to go by.
func (d *daemon) reconcileFDB(now time.Time) {
	have := d.k.bridgeMACs()
	if have == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, cl := range d.clients {
		if !have[k] && cl.goneSince.IsZero() {
			cl.goneSince = now
			d.gone = append(d.gone, goneClient{cl, now})
			d.count["clients_gone_by_reconcile"]++
		}
	}
}

// forgetGone forgets the clients gone for goneGrace by now: their
// node-client IP, host routes (and so the mesh's routes to them) and
// neighbour entries go. The grace leaves a node that the client moved to
// time to claim it (the lab moves a port at once, which flushes the
// bridge's entries; a Wi-Fi station's stay there until they age out).
// Their 464xlat state lives on until its lease ends: a client that comes
// back keeps its sessions.
//
// At most forgetPerTick a call: a crowd that leaves together would
// otherwise become thousands of address and route deletions at once into
// the netlink sockets of babeld and netifd.
func (d *daemon) forgetGone(now time.Time) {
	var gone, inKernel []*client
	d.mu.Lock()
	for k, cl := range d.clients {
		if len(gone) >= forgetPerTick {
			break
		}
		if !cl.goneSince.IsZero() && now.Sub(cl.goneSince) >= d.c.goneGrace {
			delete(d.clients, k)
			gone = append(gone, cl)
			if !cl.withdrawn { // (withdrawGone took the rest out already)
				inKernel = append(inKernel, cl)
			}
			d.count["clients_expired"]++
		}
	}
	d.mu.Unlock()
	for _, cl := range gone {
		slog.Info("client gone", "mac", cl.mac.String(), "ip4", cl.ip4, "ip6", len(cl.ip6))
	}
	for _, cl := range inKernel {
		d.release(cl)
	}
}

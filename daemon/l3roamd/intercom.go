package l3roamd

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sort"
	"time"

	"github.com/gluon-464xlat/gluon-464xlat/intercom"
	"github.com/gluon-464xlat/gluon-464xlat/internal/addrplan"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// The intercom side of l3roamd: messages from and to other nodes (the C
// daemon's intercom.c), each checked and counted by reason.

// The C daemon's retry rhythm: CLAIM every 300 ms, INFO every 500 ms until
// ACKed, at most 15 times each.
const (
	infoEvery  = 500 * time.Millisecond
	maxRetries = 15
)

var claimEvery = 300 * time.Millisecond // (a variable for the unit tests)

func (d *daemon) header() intercom.Header {
	var n [4]byte
	rand.Read(n[:])
	return intercom.Header{TTL: 1, Nonce: binary.BigEndian.Uint32(n[:]), Sender: d.c.nodeIP}
}

// send writes one unicast packet from src (invalid: the kernel chooses).
func (d *daemon) send(b []byte, dst netip.Addr, src netip.Addr) error { return d.out(b, dst, src) }

// sendUDP sends CONSENT and CONSENT_REPLY to intercom.ConsentPort, the
// rest to intercom.Port.
func (d *daemon) sendUDP(b []byte, dst netip.Addr, src netip.Addr) error {
	var cm *ipv6.ControlMessage
	if src.IsValid() {
		cm = &ipv6.ControlMessage{Src: src.AsSlice()}
	}
	pc, port := d.pc, intercom.Port
	if len(b) > 2 && b[2] >= intercom.TypeConsent {
		pc, port = d.cpc, intercom.ConsentPort
	}
	_, err := pc.WriteTo(b, cm, &net.UDPAddr{IP: dst.AsSlice(), Port: port})
	return err
}

func (d *daemon) addMeshIf(name string) error {
	ifi, err := net.InterfaceByName(name)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		d.meshIfs[name] = 0
		slog.Warn("mesh interface not there (yet)", "if", name, "err", err)
		return err
	}
	return d.joinLocked(name, ifi)
}

// joinLocked takes ifi as the mesh interface name and joins ff02::5523 on
// it (mu held).
func (d *daemon) joinLocked(name string, ifi *net.Interface) error {
	d.meshIfs[name] = ifi.Index
	if d.pc == nil { // unit tests
		return nil
	}
	if err := d.pc.JoinGroup(ifi, &net.UDPAddr{IP: intercom.Group.AsSlice()}); err != nil && !errors.Is(err, unix.EADDRINUSE) {
		slog.Warn("joining ff02::5523", "if", name, "err", err)
		return err
	}
	return nil
}

// rejoinMeshIfs follows the mesh interfaces by name: one that came up
// after it was named, or that netifd made anew (a VXLAN recreated on a
// reload has a new index, and the group membership went with the old
// device), is joined again; one that went is marked not up. Nobody else
// tells the daemon: Gluon's interface events re-add only names it lacks.
func (d *daemon) rejoinMeshIfs() {
	ifs, err := net.Interfaces()
	if err != nil {
		return
	}
	byName := map[string]*net.Interface{}
	for i := range ifs {
		byName[ifs[i].Name] = &ifs[i]
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for name, idx := range d.meshIfs {
		ifi, ok := byName[name]
		switch {
		case !ok && idx != 0:
			d.meshIfs[name] = 0
		case ok && ifi.Index != idx:
			if d.joinLocked(name, ifi) == nil {
				d.count["mesh_ifs_rejoined"]++
				slog.Info("mesh interface (re)appeared: joined ff02::5523", "if", name, "index", ifi.Index)
			}
		}
	}
}

// receive reads one of the two ports. The consent exchange has a port of
// its own so that a flood at the intercom port, which anybody on the mesh
// can send, does not drown a PLAT's question or the holder's answer (a
// roam during such a flood needs both); each port takes only its messages.
func (d *daemon) receive(pc *ipv6.PacketConn, port int) {
	defer d.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, cm, src, err := pc.ReadFrom(buf)
		if err != nil {
			select {
			case <-d.done:
				return
			default:
				d.inc("rx_errors")
				time.Sleep(10 * time.Millisecond)
				continue
			}
		}
		from, _ := netip.AddrFromSlice(src.(*net.UDPAddr).IP)
		var to netip.Addr
		if cm != nil {
			to, _ = netip.AddrFromSlice(cm.Dst)
			// intercom is between nodes: what comes in on the client
			// port (or anywhere else) is not theirs
			if !d.fromMesh(cm.IfIndex) {
				d.drop("not_from_mesh", from.Unmap(), fmt.Errorf("interface %d", cm.IfIndex))
				continue
			}
		}
		if consent := n > 2 && buf[2] >= intercom.TypeConsent; consent != (port == intercom.ConsentPort) {
			d.drop("wrong_port", from.Unmap(), fmt.Errorf("type %d on port %d", buf[2], port))
			continue
		}
		d.handle(buf[:n], from.Unmap(), to.Unmap())
	}
}

// handle acts on one packet. Whatever it refuses is counted by reason.
func (d *daemon) handle(b []byte, from, to netip.Addr) {
	m, err := intercom.Parse(b)
	if err != nil {
		d.drop("malformed", from, err)
		return
	}
	if m.Sender == d.c.nodeIP {
		d.inc("own_packets")
		return
	}
	// Clients' addresses are not nodes: a client elsewhere in the mesh
	// must not claim clients (a CLAIM releases them) or speak for a node.
	if d.inClientNet(from) || d.inClientNet(m.Sender) {
		d.drop("from_client_address", from, fmt.Errorf("sender %s", m.Sender))
		return
	}
	// Signed messages are checked before their nonce counts as seen: a
	// forgery must not use up the nonce of the genuine message.
	signed := m.Type >= intercom.TypeInfoXLAT
	if signed {
		if err := m.Verify(d.c.key, uint32(time.Now().Unix()), uint32(d.c.window/time.Second)); err != nil {
			d.drop(authReason(err), from, err)
			return
		}
	}
	// An unsigned message sent to this node alone is acted on every time:
	// it cannot come round, and the C daemon repeats a CLAIM or INFO with
	// the same bytes until it is answered, also for a client that was here
	// a few seconds ago (the third move of the mixed mesh test lost 1.2 s
	// so).
	unicast := to.IsValid() && to != intercom.Group
	if (signed || !unicast) && d.duplicate(b, signed) {
		d.inc("duplicates")
		return
	}
	// (a CLAIM for a client of this node ends here: it answers)
	if to == intercom.Group && m.TTL > 1 && (m.Type == intercom.TypeSeek || m.Type == intercom.TypeClaim && !d.knows(m.MAC)) {
		defer d.floodOn(b, m)
	}
	switch m.Type {
	case intercom.TypeClaim:
		d.onClaim(m)
	case intercom.TypeInfo:
		d.onInfo(m)
	case intercom.TypeAck:
		d.onAck(m)
	case intercom.TypeInfoXLAT:
		d.onInfoXLAT(m, from)
	case intercom.TypeRoam:
		d.onRoam(m, from, to)
	case intercom.TypeConsent:
		d.onConsent(m, from, to)
	case intercom.TypeConsentReply:
		d.onConsentReply(m, from, to)
	case intercom.TypeSeek:
		d.inc("seek_received")
		d.onSeek(m.Address)
	}
}

// Flooding, as the C daemon floods: a SEEK or CLAIM to ff02::5523 goes on
// over every mesh interface with its TTL one lower (the C daemon's
// intercom_handle_packet), so it reaches every node of the mesh; the
// duplicate check below stops it coming round. A CLAIM stops at the node
// that serves the client. Whatever a node floods on is bounded by
// floodRate: distinct forged messages must not become a storm.
const (
	floodTTL  = 64
	floodRate = 50 // forwarded per second, bursts of as many
)

func (d *daemon) floodOn(b []byte, m *intercom.Message) {
	if !d.floodLim.Allow() {
		d.inc("flood_rate_limited")
		return
	}
	out := append([]byte(nil), b...)
	out[1] = m.TTL - 1
	d.multicast(out)
	d.inc("flooded_on")
}

// meshIfNames is the names of the mesh interfaces, sorted.
func (d *daemon) meshIfNames() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := []string{}
	for n := range d.meshIfs {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// upMeshIfs is the names of the mesh interfaces that are there.
func (d *daemon) upMeshIfs() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var ifs []string
	for name, idx := range d.meshIfs {
		if idx != 0 {
			ifs = append(ifs, name)
		}
	}
	return ifs
}

// multicast sends b to ff02::5523 on every mesh interface that is up.
func (d *daemon) multicast(b []byte) {
	ifs := d.upMeshIfs()
	if d.pc == nil { // unit tests
		d.out(b, intercom.Group, netip.Addr{})
		return
	}
	for _, name := range ifs {
		if _, err := d.pc.WriteTo(b, nil, &net.UDPAddr{IP: intercom.Group.AsSlice(), Port: intercom.Port, Zone: name}); err != nil {
			slog.Warn("multicast", "if", name, "type", b[2], "err", err)
		}
	}
}

// Duplicate suppression. A message is known by its whole content but the
// TTL (a copy flooded on by a C node has a lower one), not by (type,
// nonce): the C l3roamd sends every message of a process with the same
// nonce (its getrandom wrapper fills the wrong bytes), so two CLAIMs for two
// clients would otherwise be one. An unsigned message to the group is a
// duplicate for dupWindow, the time a flooded copy takes to come round (one
// to this node alone never is, see handle); a signed one
// (ROAM, INFO_XLAT) for twice its signature's validity, so that it cannot
// be replayed. The table is bounded: what does not fit is not remembered
// (counted), never refused.
const (
	dupWindow = 10 * time.Second
	maxSeen   = 8192
)

func dupKey(b []byte) uint64 {
	h := fnv.New64a()
	h.Write(b[:1])
	h.Write(b[2:])
	return h.Sum64()
}

// duplicate reports whether b was seen within its window, and remembers it.
func (d *daemon) duplicate(b []byte, signed bool) bool {
	key, now := dupKey(b), time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if until, ok := d.seen[key]; ok && now.Before(until) {
		return true
	}
	if len(d.seen) >= maxSeen {
		d.count["duplicate_table_full"]++
		return false
	}
	window := dupWindow
	if signed {
		window = 2 * d.c.window
	}
	d.seen[key] = now.Add(window)
	return false
}

// inClientNet reports an address in the clients' prefixes.
func (d *daemon) inClientNet(a netip.Addr) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range d.prefix6 {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// fromMesh reports whether ifindex is a mesh interface, by name: a mesh
// interface made anew (netifd recreates a VXLAN) has a new index.
func (d *daemon) fromMesh(ifindex int) bool {
	ifi, err := net.InterfaceByIndex(ifindex)
	if err != nil {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.meshIfs[ifi.Name]
	return ok
}

// drop counts a refused packet always and logs at most one refusal a
// second: whoever can send packets must not be able to fill the log.
func (d *daemon) drop(reason string, from netip.Addr, err error) {
	d.inc("dropped_" + reason)
	d.logLimited("intercom packet refused", "reason", reason, "from", from, "err", err)
}

// logLimited logs a warning unless one was logged in the last second.
func (d *daemon) logLimited(msg string, args ...any) {
	d.mu.Lock()
	now := time.Now()
	log := now.Sub(d.lastDropLog) >= time.Second
	if log {
		d.lastDropLog = now
	}
	d.mu.Unlock()
	if log {
		slog.Warn(msg, args...)
	}
}

// onClaim: another node serves our client now. Tell it what we know (INFO,
// and INFO_XLAT for its IPv4) and let go of the client.
func (d *daemon) onClaim(m *intercom.Message) {
	d.mu.Lock()
	cl, ok := d.clients[m.MAC.String()]
	if !ok || cl.claiming {
		d.mu.Unlock()
		d.inc("claims_for_unknown_clients")
		return
	}
	delete(d.clients, m.MAC.String())
	var xs []intercom.XLAT
	addrs := append([]netip.Addr(nil), cl.ip6...)
	if cl.ip4.IsValid() {
		addrs = append(addrs, netip.AddrFrom16(cl.ip4.As16()))
		if x, ok := d.xlat[cl.ip4]; ok && d.c.clat.IsValid() {
			left := time.Until(x.expires)
			if left > 0 {
				xs = append(xs, intercom.XLAT{MAC: cl.mac, ClientIP: cl.ip4, Lease: uint32(left / time.Second), CLATD: x.clatd, PLATC: x.platc,
					Token: d.recordHandover(cl.ip4)})
			}
			delete(d.xlat, cl.ip4)
		}
	}
	plat := d.plat
	d.count["claims_answered"]++
	d.apply()
	d.mu.Unlock()
	slog.Info("client roamed away", "mac", cl.mac.String(), "to", m.Sender, "ip4", cl.ip4, "ip6", len(cl.ip6))
	d.release(cl)
	info := intercom.Info(d.header(), plat.Addr(), cl.mac, addrs)
	var extra [][]byte
	for i := range xs {
		extra = append(extra, intercom.InfoXLAT(d.header(), &xs[i], d.c.key, uint32(time.Now().Unix())))
	}
	ack := make(chan struct{})
	d.mu.Lock()
	d.acked[cl.mac.String()] = ack
	d.mu.Unlock()
	go d.retry(infoEvery, ack, func() bool {
		d.inc("infos_sent")
		d.send(info, m.Sender, netip.Addr{})
		for _, x := range extra {
			d.send(x, m.Sender, netip.Addr{})
		}
		return true
	})
	// A C node takes from INFO only the addresses it saw itself
	// (clientmgr_handle_info): a quiet client stays unreachable there
	// until it happens to solicit a neighbour (2 to 4 s in the mixed mesh
	// test). A SEEK for each address, unicast to the claimer (TTL 1: not
	// flooded on), makes it solicit them on its client link now, as it
	// does for a SEEK from the mesh; this daemon learns them from INFO
	// and solicits once more (rate-limited).
	for _, a := range cl.ip6 {
		d.send(intercom.Seek(d.header(), a), m.Sender, netip.Addr{})
		d.inc("seeks_sent_to_claimer")
	}
	go d.requestRoutesAfterRelease(append([]netip.Addr{nodeClientIP(d.c.nodeClient, cl.mac)}, cl.ip6...))
}

// retry runs try now and every interval until stop is closed, try says
// stop, the daemon ends, or maxRetries.
func (d *daemon) retry(every time.Duration, stop chan struct{}, try func() bool) {
	for i := 0; i < maxRetries; i++ {
		if !try() {
			return
		}
		select {
		case <-stop:
			return
		case <-d.done:
			return
		case <-time.After(every):
		}
	}
}

func (d *daemon) onAck(m *intercom.Message) {
	d.mu.Lock()
	if ch, ok := d.acked[m.MAC.String()]; ok {
		close(ch)
		delete(d.acked, m.MAC.String())
	}
	d.mu.Unlock()
	d.inc("acks_received")
}

// onInfo: the node that served the client before answered our CLAIM.
func (d *daemon) onInfo(m *intercom.Message) {
	d.mu.Lock()
	cl, ok := d.clients[m.MAC.String()]
	if !ok {
		d.mu.Unlock()
		d.inc("infos_unsolicited")
		return
	}
	for _, a := range m.Addrs {
		if a.Is4In6() {
			cl.ip4 = a.Unmap()
		} else if d.isClientIP6(a) && !slices.Contains(cl.ip6, a) {
			cl.ip6 = append(cl.ip6, a)
		}
	}
	wasClaiming := cl.claiming
	cl.claiming, cl.lateClaim = false, false
	d.count["infos_received"]++
	d.mu.Unlock()
	d.send(intercom.Ack(d.header(), m.MAC), m.Sender, netip.Addr{})
	if wasClaiming {
		d.serve(cl)
	}
}

func (d *daemon) isClientIP6(a netip.Addr) bool {
	if !a.Is6() || a.Is4In6() || a.IsLinkLocalUnicast() {
		return false
	}
	for _, p := range d.prefix6 {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// onInfoXLAT: where the client's IPv4 sessions live. The new node takes
// them over and tells the client's PLAT (ROAM).
func (d *daemon) onInfoXLAT(m *intercom.Message, from netip.Addr) {
	if !d.c.clat.IsValid() {
		d.drop("xlat_not_configured", from, nil)
		return
	}
	x := m.XLAT
	if err := d.saneXLAT(x, x.PLATC, d.c.platRange); err != nil {
		d.drop("info_xlat_invalid", from, err)
		return
	}
	d.mu.Lock()
	cl, ok := d.clients[x.MAC.String()]
	if !ok {
		d.mu.Unlock()
		d.drop("info_xlat_unsolicited", from, fmt.Errorf("no client %s here", x.MAC))
		return
	}
	cl.ip4 = x.ClientIP
	d.xlat[x.ClientIP] = xlatState{clatd: x.CLATD, platc: x.PLATC, expires: time.Now().Add(time.Duration(x.Lease) * time.Second)}
	delete(d.handovers, x.ClientIP) // back here: an earlier handover's token is spent
	d.count["info_xlat_received"]++
	d.apply()
	d.mu.Unlock()
	slog.Info("client's IPv4 roamed here", "mac", x.MAC.String(), "ip4", x.ClientIP, "clatd", x.CLATD, "platc", x.PLATC, "lease_s", x.Lease)
	d.sendRoam(x.ClientIP, x.Lease, x.CLATD, x.PLATC, x.Token)
}

// sendRoam tells PLATC that the client of CLATD is behind this node now
// (CLATB = CLATD: it came home, the PLAT forgets it), with the token of
// the node that handed it over (0 for a renewal: the PLAT knows this node
// holds the sessions). Three copies, the same nonce: the PLAT acts on the
// first.
func (d *daemon) sendRoam(ip4 netip.Addr, lease uint32, clatd, platc netip.Prefix, token uint64) {
	x := &intercom.XLAT{ClientIP: ip4, Lease: lease, CLATD: clatd, CLATB: d.c.clat, Token: token}
	b := intercom.Roam(d.header(), x, d.c.key, uint32(time.Now().Unix()))
	dst, src := addrplan.PLATMgmt(platc), addrplan.CLATOwn(d.c.clat)
	go func() {
		for i, wait := range []time.Duration{0, 200 * time.Millisecond, 800 * time.Millisecond} {
			select {
			case <-d.done:
				return
			case <-time.After(wait):
			}
			if err := d.send(b, dst, src); err != nil {
				slog.Warn("sending ROAM", "to", dst, "try", i+1, "err", err)
			}
		}
		d.inc("roams_sent")
	}()
}

// saneXLAT refuses what no honest node sends: a lease of 0 or beyond
// -max-lease, a client address that is not unicast IPv4, a CLATD outside
// the mesh's clat_range, and the message's other prefix (PLATC in
// INFO_XLAT, CLATB in ROAM) outside its range.
func (d *daemon) saneXLAT(x *intercom.XLAT, other, otherRange netip.Prefix) error {
	switch {
	case x.Lease == 0 || time.Duration(x.Lease)*time.Second > d.c.maxLease:
		return fmt.Errorf("lease of %d s", x.Lease)
	case !x.ClientIP.Is4() || !x.ClientIP.IsGlobalUnicast() && !x.ClientIP.IsPrivate():
		return fmt.Errorf("client address %s", x.ClientIP)
	case !d.c.clatRange.Contains(x.CLATD.Addr()):
		return fmt.Errorf("CLAT prefix %s outside clat_range", x.CLATD)
	case !otherRange.Contains(other.Addr()):
		return fmt.Errorf("prefix %s outside %s", other, otherRange)
	}
	return nil
}

func authReason(err error) string {
	switch {
	case errors.Is(err, intercom.ErrNoAuth):
		return "unauthenticated"
	case errors.Is(err, intercom.ErrStaleAuth):
		return "stale"
	}
	return "bad_auth"
}

// onRoam: this node is the client's PLAT. Its sessions stay bound to
// CLATD::ip in conntrack; the kernel now rewrites CLATB::ip to it on the
// way in and back on the way out.
func (d *daemon) onRoam(m *intercom.Message, from, to netip.Addr) {
	if !d.c.ownPLAT.IsValid() || to != addrplan.PLATMgmt(d.c.ownPLAT) {
		d.drop("roam_not_for_this_plat", from, fmt.Errorf("to %s", to))
		return
	}
	x := m.XLAT
	if err := d.saneXLAT(x, x.CLATB, d.c.clatRange); err != nil {
		d.drop("roam_invalid", from, err)
		return
	}
	// Only the node the client is at now may say so: from its own
	// CLATB::192.0.0.2 (clients cannot send from the mesh's ranges).
	if from != addrplan.CLATOwn(x.CLATB) {
		d.drop("roam_wrong_source", from, fmt.Errorf("ROAM for %s from %s", x.CLATB, from))
		return
	}
	// The node that holds the sessions now must agree (consent.go),
	// unless it is the one speaking: a renewal of its lease.
	d.mu.Lock()
	holder := d.holderOf(x.CLATD, addrplan.In96(x.CLATD, x.ClientIP))
	d.mu.Unlock()
	if holder == x.CLATB {
		d.acceptRoam(x, holder)
		return
	}
	go d.askConsent(x, holder, from)
}

// acceptRoam moves the sessions of CLATD::ip to CLATB::ip, if holder
// still holds them (another ROAM may have moved them while this one
// waited for consent).
func (d *daemon) acceptRoam(x *intercom.XLAT, holder netip.Prefix) {
	home, now := addrplan.In96(x.CLATD, x.ClientIP), addrplan.In96(x.CLATB, x.ClientIP)
	d.mu.Lock()
	if d.holderOf(x.CLATD, home) != holder {
		d.count["roams_superseded"]++
		d.mu.Unlock()
		return
	}
	if x.CLATB == x.CLATD {
		delete(d.roams, home)
	} else {
		d.roams[home] = roamed{home: home, now: now, expires: time.Now().Add(time.Duration(x.Lease) * time.Second)}
	}
	d.count["roams_accepted"]++
	d.apply()
	d.mu.Unlock()
	slog.Info("client roamed (PLAT)", "sessions_of", home, "now_at", now, "lease_s", x.Lease)
}

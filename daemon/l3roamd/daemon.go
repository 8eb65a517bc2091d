package l3roamd

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/gluon-464xlat/gluon-464xlat/intercom"
	"github.com/gluon-464xlat/gluon-464xlat/internal/ctlsock"
	"github.com/vishvananda/netlink"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
	"golang.org/x/time/rate"
)

type daemon struct {
	c   *config
	fw  firewall
	k   clientKernel
	pc  *ipv6.PacketConn // intercom.Port
	cpc *ipv6.PacketConn // intercom.ConsentPort
	ctl *ctlsock.Server
	// clatd: told the clients that roamed here (nil: not told)
	clatd *clatdPeer

	mu      sync.Mutex
	clients map[string]*client       // by MAC
	xlat    map[netip.Addr]xlatState // client IPv4 -> 464xlat state (clients served here)
	roams   map[netip.Addr]roamed    // PLAT: CLATD::ip -> entry
	plat    netip.Prefix
	meshIfs map[string]int // name -> index (0: not up yet)
	prefix6 []netip.Prefix
	seen    map[uint64]time.Time // recent messages (dupKey) -> until when a copy is a duplicate
	gone    []goneClient         // clients the bridge forgot, oldest first (withdrawGone)
	asking  int                  // requestRoutesAfterRelease loops running (at most maxAsking)
	// when a refusal was last logged (drop)
	lastDropLog time.Time
	acked       map[string]chan struct{}
	handovers   map[netip.Addr]handover   // client IPv4 -> its last handover from here (consent.go)
	consents    map[uint64]pendingConsent // PLAT: challenge -> ROAM waiting for consent
	consentLim  *rate.Limiter             // CONSENTs answered
	floodLim    *rate.Limiter             // SEEKs and CLAIMs flooded on
	count       map[string]uint64         // events and drops by reason
	ndp         ndp                       // solicitations for SEEKs (seek.go)
	// out sends one intercom packet (the unit tests' mesh replaces it)
	out func(b []byte, dst, src netip.Addr) error

	done chan struct{}
	wg   sync.WaitGroup
}

// newDaemon is the daemon's state without its sockets and kernel state
// (start adds them; the unit tests use it as it is).
func newDaemon(c *config) *daemon {
	d := &daemon{c: c, clients: map[string]*client{}, plat: c.plat, meshIfs: map[string]int{},
		prefix6: append([]netip.Prefix(nil), c.clientNets...), seen: map[uint64]time.Time{},
		xlat: map[netip.Addr]xlatState{}, roams: map[netip.Addr]roamed{},
		acked: map[string]chan struct{}{}, count: map[string]uint64{}, done: make(chan struct{}),
		handovers: map[netip.Addr]handover{}, consents: map[uint64]pendingConsent{}, consentLim: rate.NewLimiter(consentRate, consentRate),
		floodLim: rate.NewLimiter(floodRate, floodRate)}
	d.ndp.limit = rate.NewLimiter(seekRate, seekRate)
	d.out = d.sendUDP
	d.k = &netlinkKernel{clientDev: c.clientDev, clientBridge: c.clientBridge, exportTable: c.exportTable}
	return d
}

func start(c *config) (*daemon, error) {
	d := newDaemon(c)
	var ranges []netip.Prefix
	if c.clatRange.IsValid() {
		ranges = []netip.Prefix{c.clatRange, c.platRange}
	}
	if c.backend == "iptables" {
		x, err := newXTState(c.ip6tables)
		if err != nil {
			return nil, err
		}
		x.clientDev, x.clatDev, x.exportTable, x.ranges = c.clientDev, c.clatDev, c.exportTable, ranges
		d.fw = x
	} else {
		n := &nftState{table: c.table, clientDev: c.clientDev, clatDev: c.clatDev, ranges: ranges}
		if c.ownPLAT.IsValid() {
			n.platDev = c.platDev
		}
		d.fw = n
	}
	// The intercom port first: a second l3roamd fails here, before it
	// touches the table of the one that runs.
	started := false
	for _, l := range []struct {
		pc   **ipv6.PacketConn
		port int
	}{{&d.pc, intercom.Port}, {&d.cpc, intercom.ConsentPort}} {
		conn, err := net.ListenUDP("udp6", &net.UDPAddr{Port: l.port})
		if err != nil {
			return nil, err
		}
		defer func() {
			if !started {
				conn.Close() // the kernel state stays, as on a stop
			}
		}()
		*l.pc = ipv6.NewPacketConn(conn)
		if err := (*l.pc).SetControlMessage(ipv6.FlagDst|ipv6.FlagInterface, true); err != nil {
			return nil, err
		}
	}
	var err error
	// What a previous run left in the kernel is the state to go on from.
	if d.xlat, d.roams, err = d.fw.read(c.clat, time.Now()); err != nil {
		return nil, err
	}
	if n := len(d.xlat) + len(d.roams); n > 0 {
		slog.Info("state from the kernel", "clients_464xlat", len(d.xlat), "roamed_here_via_plat", len(d.roams))
	}
	d.relearnServed()
	if err := d.applyLocked(); err != nil {
		return nil, fmt.Errorf("%s: %w", c.backend, err)
	}
	for _, m := range append(c.meshIfs, listMeshIfs(c.meshIfsCmd)...) {
		d.addMeshIf(m)
	}
	if d.ctl, err = ctlsock.Listen(c.socket, d.commands()); err != nil {
		return nil, err
	}
	if c.clatdSock != "" && c.clat.IsValid() {
		d.clatd = newClatdPeer(c.clatdSock)
		d.clatd.set(natNeeds(d.desired()))
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.clatd.run(d.done)
		}()
	}
	neigh, err := d.subscribeNeighbours()
	if err != nil {
		close(d.done)
		d.ctl.Close()
		return nil, fmt.Errorf("neighbour table: %w", err)
	}
	started = true
	d.wg.Add(5)
	go d.watchStations()
	go d.receive(d.pc, intercom.Port)
	go d.receive(d.cpc, intercom.ConsentPort)
	go d.watchNeighbours(neigh)
	go d.expire()
	return d, nil
}

// listMeshIfs runs cmd (-mesh-ifs-cmd) and returns the names it prints.
// procd restarts a daemon that died with the command line of its start,
// whose -mesh-ifs may be old; Gluon's interface events add only what
// comes up later.
func listMeshIfs(cmd string) []string {
	if cmd == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "/bin/sh", "-c", cmd).Output()
	if err != nil {
		slog.Warn("-mesh-ifs-cmd", "cmd", cmd, "err", err)
	}
	return strings.Fields(string(out))
}

func (d *daemon) stop() {
	select {
	case <-d.done:
	default:
		close(d.done)
	}
	if d.ctl != nil {
		d.ctl.Close()
	}
	for _, pc := range []*ipv6.PacketConn{d.pc, d.cpc} {
		if pc != nil {
			pc.Close()
		}
	}
	d.wg.Wait()
	// The roaming state stays in the kernel (its entries expire with the
	// leases): a restarted l3roamd carries on from it, and running
	// sessions are not cut by a restart.
}

func (d *daemon) inc(what string) {
	d.mu.Lock()
	d.count[what]++
	d.mu.Unlock()
}

// applyLocked writes the kernel state for the current d (mu held or not
// yet shared).
func (d *daemon) applyLocked() error {
	want := d.desired()
	d.clatd.set(natNeeds(want))
	return d.fw.apply(want, time.Now())
}

func (d *daemon) desired() *desired {
	return &desired{own: d.c.clat, plat: d.plat, xlat: d.xlat, roams: d.roams}
}

func (d *daemon) apply() {
	if d.fw == nil { // unit tests of the logic alone
		return
	}
	if err := d.applyLocked(); err != nil {
		d.count["firewall_errors"]++
		slog.Error(d.c.backend, "err", err)
	}
}

// relearnServed takes the node-client IPs on the client device as the
// clients this node served before a restart.
func (d *daemon) relearnServed() {
	link, err := netlink.LinkByName(d.c.clientDev)
	if err != nil {
		return
	}
	addrs, _ := netlink.AddrList(link, unix.AF_INET6)
	for _, a := range addrs {
		ip, _ := netip.AddrFromSlice(a.IP)
		if mac, ok := macOfNodeClientIP(d.c.nodeClient, ip); ok {
			d.clients[mac.String()] = &client{mac: mac}
		}
	}
}

// expire forgets entries whose lease ended and old nonces.
func (d *daemon) expire() {
	defer d.wg.Done()
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	w := time.NewTicker(awayGrace / 4)
	defer w.Stop()
	for tick := 1; ; tick++ {
		select {
		case <-d.done:
			return
		case now := <-w.C:
			d.withdrawGone(now)
		case now := <-t.C:
			if tick%6 == 0 {
				d.reconcileFDB(now)
			}
			d.rejoinMeshIfs()
			d.forgetGone(now)
			d.mu.Lock()
			for k, until := range d.seen {
				if now.After(until) {
					delete(d.seen, k)
				}
			}
			changed := false
			for ip, x := range d.xlat {
				if now.After(x.expires) {
					delete(d.xlat, ip)
					changed = true
				}
			}
			for h, r := range d.roams {
				if now.After(r.expires) {
					delete(d.roams, h)
					changed = true
				}
			}
			if changed {
				d.apply()
			}
			d.mu.Unlock()
			if d.c.clat.IsValid() {
				d.refreshLeases()
			}
		}
	}
}

package platd

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/gluon-464xlat/gluon-464xlat/fastpath"
	"github.com/gluon-464xlat/gluon-464xlat/internal/addrplan"
	"github.com/gluon-464xlat/gluon-464xlat/internal/cli"
	"github.com/gluon-464xlat/gluon-464xlat/internal/clientpool"
	"github.com/gluon-464xlat/gluon-464xlat/internal/ctlsock"
	"github.com/gluon-464xlat/gluon-464xlat/internal/status"
	"github.com/gluon-464xlat/gluon-464xlat/internal/sysctl"
	"github.com/gluon-464xlat/gluon-464xlat/internal/xlatd"
)

type daemon struct {
	c       *config
	eng     *xlatd.Engine
	nat     natBackend
	guard   *portGuard        // nil: the kernel counts each destination's sessions
	fast    *fastpath.Program // nil: every packet takes the TUN
	fastWhy string            // why there is no fast path
	pool    *clientpool.Pool  // each client's IPv4 address
	// the fast path once its maps have the pool's clients (the pool's hooks)
	fastClients atomic.Pointer[fastpath.Program]
	reclaimed   atomic.Uint64 // pool addresses given back
	ctl         *ctlsock.Server
	started     time.Time
	wan         atomic.Pointer[netip.Addr] // the uplink address sessions are NATed to
	done        chan struct{}              // stops the watchers
	watch       sync.WaitGroup             // the watchers, which stop waits for
	// times the WAN address subscription failed and was made again
	wanWatchRestarts atomic.Uint64
}

// mgmtAddr is PLAT::192.0.0.1, where the exit answers ICMPv6 echo (prefixd's
// probes) and l3roamd listens (DESIGN.md section 2).
func (c *config) mgmtAddr() netip.Addr { return c.addr6(addrplan.PLATMgmt4) }

func start(c *config) (*daemon, error) {
	d := &daemon{c: c, started: time.Now(), done: make(chan struct{})}
	var err error
	if d.nat, err = newBackend(c); err != nil {
		return nil, err
	}
	cli.WarnForwarding("the PLAT will not pass traffic")
	// The NAT rules come before the TUN and its routes (and go after them in
	// stop): a connection opened while the route exists but the rules do not
	// gets a conntrack entry without NAT, and every retransmission of it
	// follows that entry into the translator's drop until it times out.
	wan := wanAddr(c.wanDev)
	d.wan.Store(&wan)
	if !wan.IsValid() {
		slog.Warn("the WAN has no IPv4 address yet; IPv4 waits for one", "wan", c.wanDev)
	}
	if err = d.nat.install(c, wan); err != nil {
		d.nat.remove()
		return nil, err
	}
	reclaim := make(chan struct{}, 1)
	if d.pool, err = c.newClientPool(&d.fastClients, reclaim); err == nil {
		if err := d.loadClients(); err != nil {
			slog.Error("client pool: the clients of an earlier run are lost", "err", err)
		}
		d.eng, err = xlatd.Start(c.Options(), c.translatorConfig(d.pool))
	}
	if err != nil {
		d.nat.remove()
		d.pool.Close()
		return nil, err
	}
	if err = d.setupRoutes(); err == nil {
		fc, unsupported := c.fastPathConfig()
		d.fast, d.fastWhy, err = fastpath.Start(c.fastPath, d.eng.Link.Attrs().Index, fc, unsupported)
		d.startFastClients()
	}
	if err == nil {
		d.purgeUnNATed()
		d.ctl, err = ctlsock.Listen(c.Socket, d.commands())
	}
	if err != nil {
		d.stop()
		return nil, err
	}
	if c.guardByEvents() {
		d.guard = newPortGuard(int(c.portMax-c.portMin)+1, c.clientPool, d.nat.setPortsFull)
		if c.guardFilter != "off" {
			d.guard.useKernel()
		}
		d.watch.Add(1)
		go func() { defer d.watch.Done(); d.guard.run(d.done) }()
	}
	d.watch.Add(3)
	go func() { defer d.watch.Done(); d.reclaimClients(reclaim) }()
	go func() { defer d.watch.Done(); d.followWAN(d.done) }()
	go func() { defer d.watch.Done(); d.watchConntrack(2*time.Second, d.done) }()
	return d, nil
}

// setupRoutes: the PLAT prefix into the TUN (babeld redistributes it), the
// client pool's replies into the TUN, the management address on the TUN.
// They live and die with the device; replacing them makes a restart idempotent.
func (d *daemon) setupRoutes() error {
	idx := d.eng.Link.Attrs().Index
	for _, p := range []netip.Prefix{d.c.plat.Prefix(), d.c.clientPool} {
		rt := &netlink.Route{LinkIndex: idx, Dst: ipNet(p), Protocol: unix.RTPROT_STATIC}
		if err := netlink.RouteReplace(rt); err != nil {
			return fmt.Errorf("route %s: %w", p, err)
		}
	}
	a := &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(d.c.mgmtAddr(), 128)), Flags: unix.IFA_F_NODAD}
	if err := netlink.AddrReplace(d.eng.Link, a); err != nil {
		return fmt.Errorf("management address %s: %w", d.c.mgmtAddr(), err)
	}
	return nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// stop removes the nftables table and the TUN (with its routes and address).
// Sessions stay in conntrack: a restarted platd picks them up unchanged.
func (d *daemon) stop() error {
	if d.ctl != nil {
		d.ctl.Close()
	}
	close(d.done)
	// A watcher reinstalling the rules right now would otherwise land its
	// table after remove: wait for both to end first.
	d.watch.Wait()
	d.fastClients.Store(nil)                                       // (no new client into maps being closed)
	errs := []error{d.fast.Close(), d.eng.Close(), d.pool.Close()} // the route first, then the rules: see start
	if err := d.nat.remove(); err != nil && !errors.Is(err, unix.ENOENT) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (d *daemon) status() status.Platd {
	s := status.Platd{
		Version: cli.Version, Dev: d.c.Dev, PLATPrefix: d.c.plat.String(), CLATRange: d.c.clatRange.String(),
		Mgmt: d.c.mgmtAddr().String(), WAN: d.c.wanDev, WANAddr: d.wan.Load().String(), PortRange: fmt.Sprintf("%d-%d", d.c.portMin, d.c.portMax),
		UptimeSec: int64(time.Since(d.started).Seconds()), Counters: d.eng.Counters(), Refused: d.nat.counters(),
	}
	s.Refused["destination"] = s.Counters.Drops["refused_destination"]
	s.Sessions = d.summary()
	s.Full = d.nat.isFull()
	s.Conntrack = [2]int{sysctl.ConntrackCount(), d.conntrackLimit()}
	s.WANWatch = d.wanWatchRestarts.Load()
	ps := d.pool.Stats()
	s.ClientPool = d.c.clientPool.String()
	s.Clients = status.ClientsPool{Mapped: ps.Clients, Orphans: ps.Orphans, Free: ps.Free, Refused: ps.Refused, Reclaimed: d.reclaimed.Load()}
	s.FastPath, s.FastPathReason, s.FastPathCounters = d.fast.State(), d.fastWhy, d.fast.Counters()
	s.PortGuard = "kernel"
	if d.guard != nil {
		s.PortGuard, s.PortsFull, s.PortGuardRecounts = "events", d.guard.fullNow(), d.guard.recounts.Load()
		if d.guard.kernel != nil {
			unparsed, mapFull := d.guard.kernel.Stats()
			s.PortGuard, s.PortGuardUncounted = "bpf", unparsed+mapFull
		}
	}
	return s
}

func (d *daemon) commands() map[string]ctlsock.Handler {
	return map[string]ctlsock.Handler{
		"status": func([]string) (any, error) { return d.status(), nil },
		"sessions": func(args []string) (any, error) {
			clat, err := optAddr(args)
			if err != nil {
				return nil, err
			}
			return d.sessions(clat)
		},
		"flush": func(args []string) (any, error) {
			clat, err := optAddr(args)
			if err != nil {
				return nil, err
			}
			n, err := d.flush(clat)
			if err != nil {
				return nil, err
			}
			return map[string]int{"flushed": n}, nil
		},
	}
}

// optAddr parses an optional CLAT address argument.
func optAddr(args []string) (netip.Addr, error) {
	switch len(args) {
	case 0:
		return netip.Addr{}, nil
	case 1:
		a, err := netip.ParseAddr(args[0])
		if err != nil || !a.Is6() {
			return netip.Addr{}, fmt.Errorf("%q is not an IPv6 address", args[0])
		}
		return a, nil
	}
	return netip.Addr{}, errors.New("usage: sessions|flush [CLAT-ADDRESS]")
}

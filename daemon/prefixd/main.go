// Package prefixd picks the PLAT (NAT64 exit) for this node's CLAT from
// Babel's routes: the /96 inside plat_range with the lowest metric, with
// hysteresis (absolute and relative margins, a hold-down) and active probes
// to PLAT::192.0.0.1, and tells clatd and l3roamd when it switches.
package prefixd

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/gluon-464xlat/gluon-464xlat/internal/babel"
	"github.com/gluon-464xlat/gluon-464xlat/internal/cli"
	"github.com/gluon-464xlat/gluon-464xlat/internal/ctlsock"
	"github.com/gluon-464xlat/gluon-464xlat/internal/status"
)

type config struct {
	platRange     netip.Prefix
	ownPLAT       netip.Prefix
	babel         string
	clatdSock     string
	l3roamdSock   string
	probeSrc      netip.Addr
	probeInterval time.Duration
	probeTimeout  time.Duration
	pol           policy
	socket        string
	cli.Common
}

func parseFlags(args []string) (*config, error) {
	c := &config{}
	fs := cli.NewFlagSet("prefixd", &c.Common)
	var platRange, own, src string
	fs.StringVar(&platRange, "plat-range", "", "the mesh's plat_range (required), e.g. fddd:1337:1338::/48")
	fs.StringVar(&own, "own-plat", "", "this node's own PLAT /96, when it is an exit too")
	fs.StringVar(&c.babel, "babel", "/var/run/babeld.sock", "babeld's local interface: a unix socket path or [::1]:port")
	fs.StringVar(&c.clatdSock, "clatd-socket", "/var/run/clatd.sock", "clatd's control socket (empty: do not tell clatd)")
	fs.StringVar(&c.l3roamdSock, "l3roamd-socket", "/var/run/l3roamd.sock", "l3roamd's control socket (empty: do not tell l3roamd)")
	fs.StringVar(&src, "probe-src", "", "source of the probes (clatd's CLAT::192.0.0.2); empty: any")
	fs.DurationVar(&c.probeInterval, "probe-interval", time.Second, "time between probe rounds")
	fs.DurationVar(&c.probeTimeout, "probe-timeout", 800*time.Millisecond, "how long a probe may take")
	fs.IntVar(&c.pol.maxFails, "probe-failures", 3, "consecutive failed probes that mark a PLAT down")
	fs.IntVar(&c.pol.absThreshold, "threshold-abs", 96, "a better PLAT must win by this many metric points")
	fs.Float64Var(&c.pol.relThreshold, "threshold-rel", 0.25, "... and by this fraction of the current metric")
	fs.DurationVar(&c.pol.lostGrace, "lost-grace", 2*time.Second, "how long the current PLAT's route may be lost or unreachable before prefixd leaves it")
	fs.DurationVar(&c.pol.settle, "settle", 5*time.Second, "at start, how long Babel may converge before the first choice")
	fs.DurationVar(&c.pol.holdDown, "hold-down", time.Minute, "least time between two switches for a better metric")
	fs.DurationVar(&c.pol.dwell, "dwell", 5*time.Second, "how long a better PLAT must stay better before the switch")
	fs.StringVar(&c.socket, "socket", "/var/run/prefixd.sock", "control socket path")
	if err := cli.Parse(fs, &c.Common, args, "prefixd -plat-range P/48 [flags]"); err != nil {
		return nil, err
	}
	var err error
	if c.platRange, err = netip.ParsePrefix(platRange); err != nil || !c.platRange.Addr().Is6() || c.platRange.Bits() > 96 {
		return nil, fmt.Errorf("-plat-range %q: need an IPv6 prefix of at most /96", platRange)
	}
	c.platRange = c.platRange.Masked()
	if own != "" {
		if c.ownPLAT, err = netip.ParsePrefix(own); err != nil || c.ownPLAT.Bits() != 96 || !c.platRange.Contains(c.ownPLAT.Addr()) {
			return nil, fmt.Errorf("-own-plat %q: need a /96 inside -plat-range", own)
		}
	}
	if src != "" {
		if c.probeSrc, err = netip.ParseAddr(src); err != nil || !c.probeSrc.Is6() {
			return nil, fmt.Errorf("-probe-src %q: need an IPv6 address", src)
		}
	}
	if c.probeInterval < 100*time.Millisecond || c.probeTimeout <= 0 || c.probeTimeout > c.probeInterval {
		return nil, errors.New("-probe-interval must be >= 100ms and -probe-timeout within it")
	}
	if c.pol.maxFails < 1 || c.pol.absThreshold < 0 || c.pol.relThreshold < 0 || c.pol.relThreshold >= 1 || c.pol.holdDown < 0 || c.pol.dwell < 0 || c.pol.lostGrace < 0 {
		return nil, errors.New("-probe-failures >= 1, thresholds >= 0 (relative below 1), -hold-down >= 0")
	}
	return c, nil
}

type daemon struct {
	c     *config
	src   *routeSource
	probe *prober
	peers []*peer

	mu    sync.Mutex
	ch    *chooser
	cands map[netip.Prefix]candidate
	epoch int // babeld connections seen
}

// Main runs the daemon with args (without the program name) until SIGINT or SIGTERM.
func Main(args []string) {
	c, err := parseFlags(args)
	if err != nil {
		cli.Fail("prefixd", err)
	}
	d := &daemon{c: c, ch: &chooser{policy: c.pol},
		src:   &routeSource{addr: c.babel, platRange: c.platRange, table: babel.NewTable(), change: make(chan struct{}, 1)},
		probe: &prober{src: c.probeSrc, timeout: c.probeTimeout, state: map[netip.Prefix]probeState{}}}
	for _, p := range []*peer{{name: "clatd", sock: c.clatdSock}, {name: "l3roamd", sock: c.l3roamdSock}} {
		if p.sock != "" {
			d.peers = append(d.peers, p)
		}
	}
	ctl, err := ctlsock.Listen(c.socket, d.commands())
	if err != nil {
		slog.Error("prefixd could not start", "err", err)
		os.Exit(1)
	}
	done := make(chan struct{})
	go d.src.run(done)
	go d.loop(done)
	slog.Info("prefixd running", "plat_range", c.platRange, "babel", c.babel, "own_plat", c.ownPLAT)
	slog.Info("prefixd stopping", "signal", cli.WaitForStop().String())
	close(done)
	ctl.Close()
}

// loop probes every interval and decides after each round and after each
// routing change.
func (d *daemon) loop(done <-chan struct{}) {
	tick := time.NewTicker(d.c.probeInterval)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-d.src.change:
			d.decide()
		case <-tick.C:
			if err := d.probe.round(d.platList()); err != nil {
				slog.Warn("probing", "err", err)
			}
			d.decide()
			for _, p := range d.peers {
				p.sync()
			}
		}
	}
}

// platList is every PLAT worth probing: the routed ones and our own.
func (d *daemon) platList() []netip.Prefix {
	routes, _, _ := d.src.routes()
	var list []netip.Prefix
	for p := range routes {
		list = append(list, p)
	}
	if d.c.ownPLAT.IsValid() {
		if _, ok := routes[d.c.ownPLAT]; !ok {
			list = append(list, d.c.ownPLAT)
		}
	}
	return list
}

func (d *daemon) candidates() map[netip.Prefix]candidate {
	routes, _, _ := d.src.routes()
	cands := map[netip.Prefix]candidate{}
	for p, r := range routes {
		via := r.Via.String()
		if r.If != "" {
			via += "%" + r.If
		}
		cands[p] = candidate{Prefix: p, Metric: r.Metric, Via: via}
	}
	if d.c.ownPLAT.IsValid() {
		cands[d.c.ownPLAT] = candidate{Prefix: d.c.ownPLAT, Metric: 0, Own: true}
	}
	for p, c := range cands {
		st := d.probe.get(p)
		c.Probed, c.ProbeOK, c.Fails, c.RTT = st.probed, st.ok, st.fails, st.rtt
		cands[p] = c
	}
	return cands
}

func (d *daemon) decide() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cands = d.candidates()
	if e := d.src.connections(); e != d.epoch {
		if d.epoch > 0 {
			d.ch.converging(time.Now()) // a reconnect: babeld relearns its routes
		}
		d.epoch = e
	}
	old := d.ch.current
	rec, ok := d.ch.decide(time.Now(), d.cands)
	if !ok {
		return
	}
	slog.Info("PLAT switch", "from", rec.From, "to", rec.To, "reason", rec.Reason)
	gone := ""
	if _, still := d.cands[old]; old.IsValid() && (!still || !d.ch.usable(d.cands[old])) {
		gone = old.String()
	}
	for _, p := range d.peers {
		g := ""
		if p.name == "l3roamd" {
			g = gone // l3roamd drops what pointed at a dead PLAT
		}
		p.set(rec.To, g)
	}
	go func() {
		for _, p := range d.peers {
			p.sync()
		}
	}()
}

func (d *daemon) status() status.Prefixd {
	_, mode, bad := d.src.routes()
	d.mu.Lock()
	defer d.mu.Unlock()
	s := status.Prefixd{Version: cli.Version, Current: prefixString(d.ch.current), Source: mode, BadLines: bad,
		Switches: append([]status.Switch{}, d.ch.history...), SwitchCount: d.ch.switches, Peers: map[string]status.Peer{}}
	for _, c := range d.cands {
		s.Candidates = append(s.Candidates, c)
	}
	sort.Slice(s.Candidates, func(i, j int) bool { return s.Candidates[i].Metric < s.Candidates[j].Metric })
	for _, p := range d.peers {
		s.Peers[p.name] = p.status()
	}
	return s
}

func (d *daemon) commands() map[string]ctlsock.Handler {
	return map[string]ctlsock.Handler{
		"status": func([]string) (any, error) { return d.status(), nil },
		"get_platprefix": func([]string) (any, error) {
			d.mu.Lock()
			defer d.mu.Unlock()
			return prefixString(d.ch.current), nil
		},
	}
}

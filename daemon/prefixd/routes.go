package prefixd

import (
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/gluon-464xlat/gluon-464xlat/internal/babel"
)

// rtprotBabel is the kernel route protocol number babeld installs with.
const rtprotBabel = 42

// routeSource follows the PLAT routes: from babeld's local interface when
// it answers, else from the kernel's routes of protocol babel.
type routeSource struct {
	addr      string
	platRange netip.Prefix

	mu     sync.Mutex
	table  *babel.Table
	mode   string // "babel-socket" or "kernel-routes"
	badLn  uint64 // malformed lines seen
	epoch  int    // counts (re)connections to babeld
	change chan struct{}
}

func (s *routeSource) isPLAT(p netip.Prefix) bool {
	return p.Bits() == 96 && s.platRange.Contains(p.Addr())
}

func (s *routeSource) notify() {
	select {
	case s.change <- struct{}{}:
	default:
	}
}

// run keeps a connection to babeld, reconnecting with backoff; while there
// is none, routes come from the kernel.
func (s *routeSource) run(done <-chan struct{}) {
	backoff := time.Second
	for {
		c, err := babel.Dial(s.addr)
		if err == nil {
			if err = c.Monitor(); err != nil {
				c.Close() // connected, but babeld did not take the command
			}
		}
		if err != nil {
			if s.setMode("kernel-routes") {
				slog.Warn("babeld's local interface is unavailable; following kernel routes of protocol babel", "addr", s.addr, "err", err)
			}
			if !s.pollKernel(done, backoff) {
				return
			}
			backoff = min(backoff*2, 30*time.Second)
			continue
		}
		backoff = time.Second
		s.mu.Lock()
		s.table.Reset()
		s.epoch++
		s.mu.Unlock()
		if s.setMode("babel-socket") {
			slog.Info("following babeld", "addr", s.addr)
		}
		// done ends follow by closing the connection; this one connection's
		// watcher ends with it (one per reconnect would pile up).
		lost := make(chan struct{})
		go func() {
			select {
			case <-done:
				c.Close()
			case <-lost:
			}
		}()
		s.follow(c)
		close(lost)
		select {
		case <-done:
			return
		default:
		}
		slog.Warn("lost babeld's local interface; reconnecting", "addr", s.addr)
	}
}

func (s *routeSource) setMode(m string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := s.mode != m
	s.mode = m
	return changed
}

// follow applies monitor lines until the connection ends.
func (s *routeSource) follow(c *babel.Conn) {
	defer c.Close()
	for {
		line, err := c.Next()
		if err != nil {
			return
		}
		ev, err := babel.ParseLine(line)
		if err == babel.ErrNotEvent {
			continue
		}
		if err != nil {
			s.mu.Lock()
			s.badLn++
			s.mu.Unlock()
			slog.Warn("ignoring a malformed line from babeld", "err", err)
			continue
		}
		if ev.Route == nil {
			continue
		}
		s.mu.Lock()
		s.table.Apply(ev)
		s.mu.Unlock()
		s.notify()
	}
}

// pollKernel reads the kernel's babel routes every second for d.
func (s *routeSource) pollKernel(done <-chan struct{}, d time.Duration) bool {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		s.loadKernel()
		select {
		case <-done:
			return false
		case <-time.After(time.Second):
		}
	}
	return true
}

// loadKernel replaces the table with the kernel's routes of protocol babel.
// Their metric is the kernel priority (babeld's reflect-kernel-metric makes
// it the Babel metric; otherwise all are equal and the probes decide).
func (s *routeSource) loadKernel() {
	rts, err := netlink.RouteListFiltered(unix.AF_INET6, &netlink.Route{Protocol: rtprotBabel}, netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return
	}
	t := babel.NewTable()
	for i, r := range rts {
		if r.Dst == nil {
			continue
		}
		p, ok := netip.AddrFromSlice(r.Dst.IP)
		if !ok {
			continue
		}
		ones, _ := r.Dst.Mask.Size()
		pfx := netip.PrefixFrom(p, ones)
		via, _ := netip.AddrFromSlice(r.Gw)
		t.Apply(babel.Event{Verb: "add", Object: "route", Route: &babel.Route{
			ID: fmt.Sprint("kernel", i), Prefix: pfx, Installed: true, Metric: min(r.Priority, babel.Unreachable-1), Via: via}})
	}
	s.mu.Lock()
	s.table = t
	s.mu.Unlock()
	s.notify()
}

// connections returns how often babeld's interface was (re)connected.
func (s *routeSource) connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.epoch
}

// routes returns the best route per PLAT /96.
func (s *routeSource) routes() (map[netip.Prefix]babel.Route, string, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.table.Best(s.isPLAT), s.mode, s.badLn
}

package platd

import (
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gluon-464xlat/gluon-464xlat/internal/ctdump"
	"github.com/gluon-464xlat/gluon-464xlat/internal/ctguard"
)

// The port guard refuses a new session with ICMP when the WAN port range
// towards its destination (address, protocol, port) is used up: the
// kernel's NAT would otherwise pick a clashing port and drop the packet
// silently when it confirms the entry.
//
// For a small range the kernel counts, exactly and on every new session:
// nftables' "ct count" on a dynamic set element (nft.go). That count walks
// the list of the destination's sessions each time, so it costs as much as
// the destination has sessions: with the default 4536 ports it took 70% of
// platd's session set-up rate (bench-plat: 4 000-6 000 new sessions/s
// with it, 14 000-17 000 without). For a range of exactGuardMax ports or
// more, the count follows conntrack's events (new and destroyed IPv4
// entries of platd's SNAT), and platd puts a destination into the nftables
// set ports_full while it is at the limit. Where the kernel takes a BPF
// socket filter (internal/ctguard), the filter counts on the event socket
// and platd reads only the events at which a destination turns full or
// free again; otherwise platd reads and counts every event itself (one map
// update per event: about 4 us of platd's CPU per session in bench-plat,
// on top of the kernel's ~10).
const exactGuardMax = 1024

// guardLimit is how many sessions one destination may have. The kernel's
// NAT looks for a free port in at most 240 tries (windows of 128, 64, 32
// and 16 consecutive ports from random starts) and, finding none, keeps a
// clashing one: the session is then dropped silently when the kernel
// confirms it (insert_failed). Used ports cluster, so above about 7/8 of a
// range it misses free ports often enough to matter (measured: 14 of 32
// sessions lost between 1008 and 1024 of 1024 ports); below 128 ports it
// tries them all.
func guardLimit(ports int) int {
	if ports < 128 {
		return ports
	}
	return ports - ports/8
}

// destKey is what one WAN port serves once at a time: a destination address,
// protocol and port (ICMP's echo identifier is the NATed "port": port 0).
type destKey = ctguard.Dest

type portGuard struct {
	limit, resume int32        // refuse from limit sessions on, accept again below resume
	pool          netip.Prefix // the sessions' IPv4 sources before SNAT (the client pool)
	// set adds a destination to ports_full (true) or removes it.
	set func(k destKey, full bool) error

	// kernel counts in the kernel; nil: counts does, from every event
	kernel *ctguard.Counter

	mu     sync.Mutex
	counts map[destKey]int32 // bounded by the live sessions: a key at 0 is deleted
	full   map[destKey]bool

	recounts atomic.Uint64 // whole recounts from a dump (start, lost events)
}

// newPortGuard refuses from guardLimit(ports) sessions on and accepts again
// below 1/32 of the range less: not one nftables transaction per session
// that ends at a full destination. Events reach platd a little after the
// sessions start; the ports above the limit take the few that pass meanwhile.
func newPortGuard(ports int, pool netip.Prefix, set func(destKey, bool) error) *portGuard {
	limit := int32(guardLimit(ports))
	return &portGuard{limit: limit, resume: limit - int32(ports/32), pool: pool, set: set,
		counts: map[destKey]int32{}, full: map[destKey]bool{}}
}

// key is the destination of one of platd's IPv4 entries.
func (g *portGuard) key(e ctdump.Entry) (destKey, bool) {
	if e.Mark&sessionMark == 0 || !g.pool.Contains(e.Src) || !e.Dst.Is4() {
		return destKey{}, false
	}
	return destOf(e), true
}

// destOf is the destination of an IPv4 entry.
func destOf(e ctdump.Entry) destKey {
	k := destKey{Addr: e.Dst.As4(), Proto: e.Proto}
	if k.Proto != unix.IPPROTO_ICMP {
		k.Port = e.DstPort
	}
	return k
}

// useKernel makes the kernel count (ctguard) if it can; run attaches the
// filter to its event socket.
func (g *portGuard) useKernel() {
	kc, err := ctguard.Load(g.pool, g.limit, g.resume)
	if err != nil {
		slog.Info("port guard: counting every conntrack event in platd, the kernel takes no BPF socket filter", "err", err)
		return
	}
	g.kernel = kc
}

// event counts one new or destroyed entry, or, where the kernel counts,
// takes the count of a destination whose event the filter let through.
func (g *portGuard) event(kind int, e ctdump.Entry) {
	if g.kernel != nil {
		if e.Dst.Is4() {
			k := destOf(e)
			g.mu.Lock()
			defer g.mu.Unlock()
			g.check(k, g.kernel.Count(k))
		}
		return
	}
	k, ok := g.key(e)
	if !ok {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	n := g.counts[k]
	if kind == ctdump.New {
		n++
	} else if n > 0 {
		n--
	}
	if n == 0 {
		delete(g.counts, k)
	} else {
		g.counts[k] = n
	}
	g.check(k, n)
}

// check puts k into ports_full or takes it out when its count crosses a
// threshold.
func (g *portGuard) check(k destKey, n int32) {
	switch {
	case !g.full[k] && n >= g.limit:
		if err := g.set(k, true); err != nil {
			slog.Error("port guard: cannot refuse a full destination", "dst", netip.AddrFrom4(k.Addr), "proto", k.Proto, "port", k.Port, "err", err)
			return
		}
		g.full[k] = true
		g.tellKernel(k, true)
		slog.Warn("WAN ports to a destination used up: refusing its new sessions", "dst", netip.AddrFrom4(k.Addr), "proto", k.Proto, "port", k.Port, "sessions", n)
	case g.full[k] && n < g.resume:
		if g.set(k, false) == nil {
			delete(g.full, k)
			g.tellKernel(k, false)
			slog.Info("WAN ports to a destination free again", "dst", netip.AddrFrom4(k.Addr), "proto", k.Proto, "port", k.Port, "sessions", n)
		}
	}
}

// tellKernel lets the filter know that k is refused or not: it reports
// k next when that changes.
func (g *portGuard) tellKernel(k destKey, full bool) {
	if g.kernel == nil {
		return
	}
	if err := g.kernel.SetFull(k, full); err != nil {
		slog.Error("port guard: BPF map", "err", err)
	}
}

// recount counts every session again from a dump of the table.
func (g *portGuard) recount() error {
	counts := map[destKey]int32{}
	err := ctdump.EachEntry(marked4, func(e ctdump.Entry) {
		if k, ok := g.key(e); ok {
			counts[k]++
		}
	})
	if err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.kernel != nil {
		g.kernel.Reset(counts)
	} else {
		g.counts = counts
	}
	for k := range g.full {
		g.check(k, counts[k])
	}
	for k, n := range counts {
		g.check(k, n)
	}
	g.recounts.Add(1)
	return nil
}

// recountEvery is how often at most the guard counts every session again
// after the kernel dropped events (a flood of new sessions faster than
// platd reads): each recount dumps the whole table.
const recountEvery = 5 * time.Second

// run follows the events until done closes. It counts from a dump when it
// subscribes (sessions of an earlier run) and again, at most every
// recountEvery, after the kernel dropped events. (Events of the sessions
// that start or end while a dump runs can be counted twice or not at all:
// the limit's margin takes that, and the next recount mends it.)
func (g *portGuard) run(done <-chan struct{}) {
	defer g.kernel.Close()
	var filter func(fd int) error
	if g.kernel != nil {
		filter = g.kernel.Attach
	}
	var stale atomic.Bool
	recount := func() {
		if err := g.recount(); err != nil {
			slog.Error("port guard: cannot count the sessions", "err", err)
		}
	}
	go every(recountEvery, done, func() {
		if stale.Swap(false) {
			slog.Warn("port guard: conntrack events were lost, counting again")
			recount()
		}
	})
	for {
		err := ctdump.Watch(unix.AF_INET, filter, done, recount, func() { stale.Store(true) }, g.event)
		select {
		case <-done:
			return
		default:
		}
		slog.Error("port guard: conntrack events", "err", err)
		select {
		case <-done:
			return
		case <-time.After(time.Second):
		}
	}
}

// fullNow is the number of destinations refused for want of ports.
func (g *portGuard) fullNow() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.full)
}

package platd

import (
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gluon-464xlat/gluon-464xlat/fastpath"
	"github.com/gluon-464xlat/gluon-464xlat/internal/clientpool"
	"github.com/gluon-464xlat/gluon-464xlat/internal/ctdump"
)

// Each client (CLAT address) has an IPv4 address of its own from the client
// pool while conntrack holds sessions of it (internal/clientpool): the
// TUN path gives it on the client's first packet, the fast path's maps
// follow, and the reclaimer gives back what no session uses.

// reclaimGrace: an address given out this recently is kept even without a
// session (its first packet may not have reached conntrack yet).
const reclaimGrace = time.Minute

// reclaimEvery is how often unused addresses are given back without the
// pool running out: it keeps the fast path's maps and the journal to the
// clients of the last sessions.
const reclaimEvery = 10 * time.Minute

// newClientPool makes the pool; its mappings go to the fast path in fast
// once there is one (see startFastClients).
func (c *config) newClientPool(fast *atomic.Pointer[fastpath.Program], reclaim chan<- struct{}) (*clientpool.Pool, error) {
	return clientpool.New(c.clientPool, c.clatRange, c.clientsFile, clientpool.Hooks{
		Mapped:   func(v4 [4]byte, v6 [16]byte) error { return fast.Load().MapClient(v4, v6) },
		Unmapped: func(v4 [4]byte, v6 [16]byte) { fast.Load().UnmapClient(v4, v6) },
		Full: func() {
			select {
			case reclaim <- struct{}{}:
			default:
			}
		},
	})
}

// poolInUse is the client pool's addresses that conntrack has sessions of
// (IPv4 entries from them, NATed or not).
func (d *daemon) poolInUse() (map[[4]byte]bool, error) {
	used := map[[4]byte]bool{}
	err := ctdump.EachEntry(ctdump.Filter{Family: unix.AF_INET}, func(e ctdump.Entry) {
		if d.c.clientPool.Contains(e.Src) {
			used[e.Src.As4()] = true
		}
	})
	return used, err
}

// loadClients takes over the mappings of an earlier run whose sessions
// conntrack still holds.
func (d *daemon) loadClients() error {
	used, err := d.poolInUse()
	if err != nil {
		return err
	}
	kept, err := d.pool.Load(used)
	if kept > 0 || len(used) > 0 {
		slog.Info("client pool: clients of running sessions kept", "clients", kept, "addresses_in_use", len(used))
	}
	return err
}

// startFastClients hands the pool's mappings to the fast path: those made
// from now on by the hook, those made before it here.
func (d *daemon) startFastClients() {
	if d.fast == nil {
		return
	}
	d.fastClients.Store(d.fast)
	d.pool.Each(func(v4, v6 netip.Addr) {
		if err := d.fast.MapClient(v4.As4(), v6.As16()); err != nil {
			slog.Error("client pool: the fast path does not take a client", "client", v6, "err", err)
		}
	})
}

// reclaimClients gives back unused addresses every reclaimEvery and when
// the pool runs out (at most every 10 s then: each time dumps the table).
func (d *daemon) reclaimClients(wake <-chan struct{}) {
	t := time.NewTicker(reclaimEvery)
	defer t.Stop()
	var last time.Time
	for {
		select {
		case <-d.done:
			return
		case <-t.C:
		case <-wake:
			if time.Since(last) < 10*time.Second {
				continue
			}
		}
		last = time.Now()
		used, err := d.poolInUse()
		if err != nil {
			slog.Error("client pool: cannot read conntrack", "err", err)
			continue
		}
		n, err := d.pool.Reclaim(used, reclaimGrace)
		if err != nil {
			slog.Error("client pool", "err", err)
		}
		if n > 0 {
			d.reclaimed.Add(uint64(n))
			slog.Info("client pool: addresses without sessions given back", "addresses", n, "in_use", len(used))
		}
	}
}

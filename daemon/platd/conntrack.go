package platd

import (
	"log/slog"
	"time"

	"github.com/gluon-464xlat/gluon-464xlat/internal/sysctl"
)

// watchConntrack refuses new sessions (with ICMP, via gate_full) while the
// kernel's connection table is nearly full: when it is full, the kernel
// drops new flows silently before any rule sees them. Existing sessions
// are untouched. Checked every interval until done closes.
func (d *daemon) watchConntrack(interval time.Duration, done <-chan struct{}) {
	every(interval, done, func() {
		count, limit := sysctl.ConntrackCount(), d.conntrackLimit()
		if limit <= 0 || count < 0 {
			return
		}
		switch full := d.nat.isFull(); {
		case !full && count >= limit:
			if err := d.nat.setFull(true); err == nil {
				slog.Warn("conntrack table nearly full: refusing new NAT64 sessions", "entries", count, "limit", limit)
			}
		case full && count < limit*9/10:
			if err := d.nat.setFull(false); err == nil {
				slog.Info("conntrack table has room again: accepting new NAT64 sessions", "entries", count, "limit", limit)
			}
		}
	})
}

// every calls fn every interval until done closes.
func every(interval time.Duration, done <-chan struct{}, fn func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			fn()
		}
	}
}

// conntrackLimit is -conntrack-limit, or 95% of nf_conntrack_max.
func (d *daemon) conntrackLimit() int {
	if d.c.conntrackLimit > 0 {
		return d.c.conntrackLimit
	}
	return sysctl.Int("net/netfilter/nf_conntrack_max") * 95 / 100
}

package platd

import (
	"errors"
	"log/slog"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// wanAddr returns the uplink's first global IPv4 address, if any.
func wanAddr(dev string) netip.Addr {
	link, err := netlink.LinkByName(dev)
	if err != nil {
		return netip.Addr{}
	}
	addrs, err := netlink.AddrList(link, unix.AF_INET)
	if err != nil {
		return netip.Addr{}
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP.To4()); ok && ip.IsGlobalUnicast() {
			return ip
		}
	}
	return netip.Addr{}
}

// followWAN reinstalls the NAT table whenever the uplink's IPv4 address
// changes (DHCP renewals, PPPoE reconnects), until done is closed. The
// kernel drops events when a burst overflows the socket (ENOBUFS), which
// ends a subscription: it is made again (after a pause that grows while it
// keeps failing) and the address read afresh, so nothing missed stays
// missed; status counts the restarts.
func (d *daemon) followWAN(done <-chan struct{}) {
	pause := time.Second
	for {
		updates := make(chan netlink.AddrUpdate, 64)
		failed := make(chan error, 1)
		err := netlink.AddrSubscribeWithOptions(updates, done, netlink.AddrSubscribeOptions{
			ReceiveBufferSize: 1 << 20, // a limit, not an allocation
			ErrorCallback: func(err error) {
				select {
				case failed <- err:
				default:
				}
			},
		})
		if err == nil {
			d.checkWAN() // what changed while there was no subscription
			for u := range updates {
				// Only the uplink's own addresses matter; reading them all
				// again for every event of every device would make a burst
				// of events quadratic.
				if l, err := netlink.LinkByName(d.c.wanDev); err == nil && l.Attrs().Index != u.LinkIndex {
					continue
				}
				d.checkWAN()
				pause = time.Second
			}
			select {
			case err = <-failed:
			default:
				err = errors.New("subscription ended")
			}
		}
		select {
		case <-done:
			return
		case <-time.After(pause):
		}
		d.wanWatchRestarts.Add(1)
		slog.Warn("the WAN address watch failed; subscribing again", "err", err)
		pause = min(2*pause, 10*time.Second)
	}
}

// checkWAN reinstalls the NAT table if the uplink's address changed.
func (d *daemon) checkWAN() {
	a := wanAddr(d.c.wanDev)
	old := *d.wan.Load()
	if a == old {
		return
	}
	slog.Info("WAN address changed", "old", old, "new", a)
	if err := d.nat.install(d.c, a); err != nil {
		slog.Error("reinstalling the NAT table", "err", err)
		return
	}
	d.wan.Store(&a)
	d.purgeUnNATed() // the legacy backend's reinstall is not atomic
}

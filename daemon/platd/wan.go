package platd

import (
	"log/slog"
	"net/netip"

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
// changes (DHCP renewals, PPPoE reconnects), until done is closed.
func (d *daemon) followWAN(done <-chan struct{}) {
	updates := make(chan netlink.AddrUpdate, 16)
	if err := netlink.AddrSubscribe(updates, done); err != nil {
		slog.Warn("cannot follow the WAN address; restart platd when it changes", "err", err)
		return
	}
	for range updates {
		a := wanAddr(d.c.wanDev)
		old := *d.wan.Load()
		if a == old {
			continue
		}
		slog.Info("WAN address changed", "old", old, "new", a)
		if err := d.nat.install(d.c, a); err != nil {
			slog.Error("reinstalling the NAT table", "err", err)
			continue
		}
		d.wan.Store(&a)
		d.purgeUnNATed() // the legacy backend's reinstall is not atomic
	}
}

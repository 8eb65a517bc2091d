package clatd

import (
	"log/slog"

	"github.com/vishvananda/netlink"

	"github.com/gluon-464xlat/gluon-464xlat/fastpath"
	"github.com/gluon-464xlat/gluon-464xlat/siit"
)

// startFastPath loads and attaches the program to the TUN (ifindex) and,
// when the clients' device is an Ethernet device, to its ingress too. It
// returns nil and the reason when the fast path does not run.
func (c *config) startFastPath(ifindex int) (*fastpath.Program, string, error) {
	c.tunIndex, c.earlyIndex = ifindex, 0
	client := c.clientLink()
	unsupported := ""
	if len(c.eams) > 0 {
		// it maps the client network only; more EAMs are the TUN path's
		unsupported = "-eam given: the fast path maps the client network only"
	}
	if client != nil && client.Attrs().EncapType == "ether" && unsupported == "" && c.fastPath != "off" {
		c.earlyIndex = client.Attrs().Index
	}
	p, why, err := fastpath.Start(c.fastPath, ifindex, c.fastPathConfig(c.plat), unsupported)
	if p != nil && c.earlyIndex != 0 {
		if err := p.AttachEarly(c.earlyIndex); err != nil {
			// the TUN's egress still has it: direct sending from there
			slog.Warn("fast path: not at the clients' device", "dev", c.clientDev, "err", err)
			c.earlyIndex = 0
			p.SetConfig(c.fastPathConfig(c.plat))
		}
	}
	if p != nil {
		slog.Info("fast path on", "tun", c.Dev, "clients_dev", c.earlyDev())
	}
	if p == nil && client != nil {
		// a killed clatd's filter, which no clatd now configures
		fastpath.DetachEarly(client.Attrs().Index)
	}
	return p, why, err
}

// earlyDev is the clients' device when the program runs at its ingress.
func (c *config) earlyDev() string {
	if c.earlyIndex == 0 {
		return ""
	}
	return c.clientDev
}

func (c *config) clientLink() netlink.Link {
	if c.clientDev == "" {
		return nil
	}
	l, err := netlink.LinkByName(c.clientDev)
	if err != nil {
		return nil
	}
	return l
}

// fastPathConfig is the program's configuration for a PLAT prefix. The
// program translates to and from a /96 PLAT prefix other than the
// Well-Known Prefix (whose non-global IPv4 rules it does not have); with
// any other, every packet takes the TUN.
func (c *config) fastPathConfig(plat string) fastpath.Config {
	fc := fastpath.Config{CLAT: c.clat, ClientNet: c.clientNet, MTU6: c.MTU, Frag6: min(c.lowMTU6, c.MTU), MTU4: 0xffff,
		Direct: true, TUNIndex: c.tunIndex, EarlyIndex: c.earlyIndex}
	if p, err := siit.ParsePrefix6052(plat); err == nil && p.Prefix().Bits() == 96 && !p.WellKnown() {
		fc.PLAT = p.Prefix()
	}
	return fc
}

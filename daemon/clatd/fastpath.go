package clatd

import (
	"github.com/gluon-464xlat/gluon-464xlat/fastpath"
	"github.com/gluon-464xlat/gluon-464xlat/siit"
)

// startFastPath loads and attaches the program to the TUN (ifindex). It
// returns nil and the reason when the fast path does not run.
func (c *config) startFastPath(ifindex int) (*fastpath.Program, string, error) {
	unsupported := ""
	if len(c.eams) > 0 {
		// it maps the client network only; more EAMs are the TUN path's
		unsupported = "-eam given: the fast path maps the client network only"
	}
	return fastpath.Start(c.fastPath, ifindex, c.fastPathConfig(c.plat), unsupported)
}

// fastPathConfig is the program's configuration for a PLAT prefix. The
// program translates to and from a /96 PLAT prefix other than the
// Well-Known Prefix (whose non-global IPv4 rules it does not have); with
// any other, every packet takes the TUN.
func (c *config) fastPathConfig(plat string) fastpath.Config {
	fc := fastpath.Config{CLAT: c.clat, ClientNet: c.clientNet, MTU6: c.MTU, Frag6: min(c.lowMTU6, c.MTU), MTU4: 0xffff, Direct: true}
	if p, err := siit.ParsePrefix6052(plat); err == nil && p.Prefix().Bits() == 96 && !p.WellKnown() {
		fc.PLAT = p.Prefix()
	}
	return fc
}

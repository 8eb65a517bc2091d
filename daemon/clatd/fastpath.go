package clatd

import (
	"fmt"
	"log/slog"

	"github.com/gluon-464xlat/gluon-464xlat/fastpath"
	"github.com/gluon-464xlat/gluon-464xlat/siit"
)

// The kernel fast path (package fastpath) beside the TUN: -fastpath auto
// runs it where the kernel lets clatd load and attach it and says why not
// otherwise; on fails the start instead; off leaves every packet to the
// TUN.
type fastPathMode string

func (m *fastPathMode) String() string { return string(*m) }

func (m *fastPathMode) Set(s string) error {
	switch s {
	case "auto", "on", "off":
		*m = fastPathMode(s)
		return nil
	}
	return fmt.Errorf("%q: want auto, on or off", s)
}

// startFastPath loads and attaches the program to the TUN (ifindex). It
// returns nil and the reason when the fast path does not run.
func (c *config) startFastPath(ifindex int) (*fastpath.Program, string, error) {
	if c.fastPath == "off" {
		return nil, "-fastpath off", nil
	}
	if len(c.eams) > 0 {
		// it maps the client network only; more EAMs are the TUN path's
		if c.fastPath == "on" {
			return nil, "", fmt.Errorf("-fastpath on: the fast path maps the client network only, not -eam")
		}
		return nil, "-eam given: the fast path maps the client network only", nil
	}
	p, err := fastpath.Load()
	if err == nil {
		if err = p.SetConfig(c.fastPathConfig(c.plat)); err == nil {
			err = p.Attach(ifindex)
		}
		if err != nil {
			p.Close()
		}
	}
	if err != nil {
		if c.fastPath == "on" {
			return nil, "", fmt.Errorf("fast path: %w", err)
		}
		slog.Warn("fast path not available: every packet takes the TUN", "err", err)
		return nil, "the kernel refused it: " + err.Error(), nil
	}
	return p, "", nil
}

// fastPathConfig is the program's configuration for a PLAT prefix. The
// program translates to and from a /96 PLAT prefix other than the
// Well-Known Prefix (whose non-global IPv4 rules it does not have); with
// any other, every packet takes the TUN.
func (c *config) fastPathConfig(plat string) fastpath.Config {
	fc := fastpath.Config{CLAT: c.clat, ClientNet: c.clientNet, MTU6: c.MTU, Frag6: min(c.lowMTU6, c.MTU), MTU4: 0xffff}
	if p, err := siit.ParsePrefix6052(plat); err == nil && p.Prefix().Bits() == 96 && !p.WellKnown() {
		fc.PLAT = p.Prefix()
	}
	return fc
}

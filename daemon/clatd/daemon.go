package clatd

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gluon-464xlat/gluon-464xlat/fastpath"
	"github.com/gluon-464xlat/gluon-464xlat/internal/cli"
	"github.com/gluon-464xlat/gluon-464xlat/internal/ctlsock"
	"github.com/gluon-464xlat/gluon-464xlat/internal/status"
	"github.com/gluon-464xlat/gluon-464xlat/internal/xlatd"
)

type daemon struct {
	c       *config
	eng     *xlatd.Engine
	routes  *routes
	ctl     *ctlsock.Server
	started time.Time
	fast    *fastpath.Program // nil: every packet takes the TUN
	fastWhy string            // why there is no fast path

	mu   sync.Mutex // serialises set_platprefix
	plat atomic.Pointer[string]

	roamMu sync.Mutex
	roamed []netip.Addr // set_roamed's clients, sorted
}

func start(c *config) (*daemon, error) {
	d := &daemon{c: c, started: time.Now()}
	d.plat.Store(&c.plat)
	sc, err := c.translatorConfig(c.plat)
	if err != nil {
		return nil, err
	}
	if d.eng, err = xlatd.Start(c.Options(), sc); err != nil {
		return nil, err
	}
	if d.routes, err = setupRoutes(c, d.eng.Link); err != nil {
		d.eng.Close()
		return nil, err
	}
	if d.fast, d.fastWhy, err = c.startFastPath(d.eng.Link.Attrs().Index); err != nil {
		d.stop()
		return nil, err
	}
	if d.ctl, err = ctlsock.Listen(c.Socket, d.commands()); err != nil {
		d.stop()
		return nil, err
	}
	return d, nil
}

func (d *daemon) stop() error {
	if d.ctl != nil {
		d.ctl.Close()
	}
	var errs []error
	errs = append(errs, d.fast.Close())
	if d.routes != nil {
		errs = append(errs, d.routes.remove())
	}
	errs = append(errs, d.eng.Close())
	return errors.Join(errs...)
}

// setPlat switches to a new PLAT prefix ("" for none) without dropping packets.
func (d *daemon) setPlat(plat string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	sc, err := d.c.translatorConfig(plat)
	if err != nil {
		return err
	}
	if d.fast != nil {
		if err := d.fast.SetConfig(d.c.fastPathConfig(plat)); err != nil {
			return err
		}
	}
	if err := d.eng.SetConfig(sc); err != nil {
		return err
	}
	old := *d.plat.Load()
	d.plat.Store(&plat)
	slog.Info("PLAT prefix changed", "old", old, "new", plat)
	return nil
}

func (d *daemon) status() status.Clatd {
	return status.Clatd{
		Version: cli.Version, Dev: d.c.Dev, CLATPrefix: d.c.clat.String(), PLATPrefix: *d.plat.Load(),
		ClientNet: d.c.clientNet.String(), MTU: d.c.MTU, Offload: !d.c.NoOffload,
		UptimeSec: int64(time.Since(d.started).Seconds()), Counters: d.eng.Counters(),
		FastPath: d.fast.State(), FastPathReason: d.fastWhy, FastPathCounters: d.fast.Counters(),
		RoamedClients: len(d.getRoamed()), FastPathEarly: d.c.earlyDev(),
	}
}

func (d *daemon) commands() map[string]ctlsock.Handler {
	return map[string]ctlsock.Handler{
		"status": func([]string) (any, error) { return d.status(), nil },
		"get_platprefix": func([]string) (any, error) {
			return *d.plat.Load(), nil
		},
		"set_platprefix": func(args []string) (any, error) {
			if len(args) != 1 {
				return nil, fmt.Errorf("usage: set_platprefix PREFIX")
			}
			if err := d.setPlat(args[0]); err != nil {
				return nil, err
			}
			return "ok", nil
		},
		// l3roamd's clients that roamed here: it rewrites their packets in
		// netfilter, so the fast path must not send them direct.
		"get_roamed": func([]string) (any, error) {
			return addrList(d.getRoamed()), nil
		},
		"set_roamed": func(args []string) (any, error) {
			as := make([]netip.Addr, 0, len(args))
			for _, a := range args {
				ip, err := netip.ParseAddr(a)
				if err != nil || !ip.Is4() {
					return nil, fmt.Errorf("set_roamed: %q is not an IPv4 address", a)
				}
				as = append(as, ip)
			}
			d.setRoamed(as)
			return "ok", nil
		},
		"del_platprefix": func(args []string) (any, error) {
			if len(args) > 1 {
				return nil, fmt.Errorf("usage: del_platprefix [PREFIX]")
			}
			if len(args) == 1 && args[0] != *d.plat.Load() {
				return "ok", nil // not the one in use: nothing to do
			}
			if err := d.setPlat(""); err != nil {
				return nil, err
			}
			return "ok", nil
		},
	}
}

func (d *daemon) getRoamed() []netip.Addr {
	d.roamMu.Lock()
	defer d.roamMu.Unlock()
	return d.roamed
}

func (d *daemon) setRoamed(as []netip.Addr) {
	slices.SortFunc(as, netip.Addr.Compare)
	as = slices.Compact(as)
	d.roamMu.Lock()
	defer d.roamMu.Unlock()
	if d.fast != nil {
		if err := d.fast.SetRoamed(as); err != nil {
			slog.Warn("roamed clients", "err", err)
		}
	}
	d.roamed = as
}

// addrList is addresses as set_roamed takes them: space-separated.
func addrList(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, " ")
}

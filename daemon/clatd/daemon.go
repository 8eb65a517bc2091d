package clatd

import (
	"errors"
	"fmt"
	"log/slog"
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

package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gluon-464xlat/gluon-464xlat/internal/ctlsock"
	"github.com/gluon-464xlat/gluon-464xlat/siit"
	"github.com/gluon-464xlat/gluon-464xlat/tun"
	"golang.org/x/sys/unix"
)

// bufSize holds the largest super-packet a TUN hands over (64 KiB) plus room.
const bufSize = 65536 + siit.Headroom + 256

type daemon struct {
	c       *config
	dev     *tun.Device
	routes  *routes
	workers []*worker
	ctl     *ctlsock.Server
	wg      sync.WaitGroup
	started time.Time

	mu   sync.Mutex // serialises set_platprefix
	plat atomic.Pointer[string]
}

// worker translates the packets of one TUN queue.
type worker struct {
	q          *tun.Queue
	tr         *siit.Translator
	readErrs   atomic.Uint64
	writeErrs  atomic.Uint64
	lastErrLog time.Time
	cpu        int // pinned to this CPU, or -1
}

func start(c *config) (*daemon, error) {
	d := &daemon{c: c, started: time.Now()}
	d.plat.Store(&c.plat)
	sc, err := c.translatorConfig(c.plat)
	if err != nil {
		return nil, err
	}
	if d.dev, err = tun.Open(c.dev, c.queues, !c.noOffload); err != nil {
		return nil, err
	}
	if d.routes, err = setupLink(c); err != nil {
		d.dev.Close()
		return nil, err
	}
	for i, q := range d.dev.Queues {
		tr, err := siit.New(sc)
		if err != nil {
			d.stop()
			return nil, err
		}
		w := &worker{q: q, tr: tr, cpu: -1}
		if c.pinCPUs {
			w.cpu = i % runtime.NumCPU()
		}
		d.workers = append(d.workers, w)
		d.wg.Add(1)
		go func() { defer d.wg.Done(); w.loop() }()
	}
	if d.ctl, err = ctlsock.Listen(c.socket, d.commands()); err != nil {
		d.stop()
		return nil, err
	}
	return d, nil
}

// loop reads a packet or super-packet, translates it and writes what comes
// out, on one queue, until the device is closed. The same buffer serves
// every packet: no allocation per packet.
func (w *worker) loop() {
	if w.cpu >= 0 {
		// One thread per queue, staying on one CPU: a thread that wanders
		// hands one flow's packets to several CPUs' backlogs, which costs
		// cache and reorders them (measured: +15% single-stream TCP).
		runtime.LockOSThread()
		var set unix.CPUSet
		set.Set(w.cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			slog.Warn("pinning queue to CPU", "cpu", w.cpu, "err", err)
		}
	}
	buf := make([]byte, bufSize)
	p := siit.Packet{Buf: buf}
	var out siit.Batch
	for {
		if err := w.q.Read(&p, siit.Headroom); err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			w.readErrs.Add(1)
			w.logErr("tun read", err)
			continue
		}
		w.tr.Translate(&p, &out)
		for i := 0; i < out.N; i++ {
			if err := w.q.Write(&out.Pkts[i]); err != nil {
				if errors.Is(err, os.ErrClosed) {
					return
				}
				w.writeErrs.Add(1)
				w.logErr("tun write", err)
			}
		}
	}
}

// logErr rate-limits error logs to one a second per queue.
func (w *worker) logErr(what string, err error) {
	if time.Since(w.lastErrLog) > time.Second {
		w.lastErrLog = time.Now()
		slog.Warn(what, "err", err)
	}
}

func (d *daemon) stop() error {
	if d.ctl != nil {
		d.ctl.Close()
	}
	var errs []error
	if d.routes != nil {
		errs = append(errs, d.routes.remove())
	}
	if d.dev != nil {
		errs = append(errs, d.dev.Close())
	}
	d.wg.Wait()
	return errors.Join(errs...)
}

// setPlat switches every queue's translator to a new PLAT prefix. Each packet
// is translated entirely with the old or the new prefix: none is dropped.
func (d *daemon) setPlat(plat string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	sc, err := d.c.translatorConfig(plat)
	if err != nil {
		return err
	}
	for _, w := range d.workers {
		if err := w.tr.SetConfig(sc); err != nil {
			return err
		}
	}
	old := *d.plat.Load()
	d.plat.Store(&plat)
	slog.Info("PLAT prefix changed", "old", old, "new", plat)
	return nil
}

type status struct {
	Version    string        `json:"version"`
	Dev        string        `json:"dev"`
	CLATPrefix string        `json:"clat_prefix"`
	PLATPrefix string        `json:"plat_prefix"`
	ClientNet  string        `json:"client_net"`
	MTU        int           `json:"mtu"`
	Queues     int           `json:"queues"`
	Offload    bool          `json:"offload"`
	UptimeSec  int64         `json:"uptime_s"`
	Counters   siit.Snapshot `json:"counters"`
	ReadErrs   uint64        `json:"tun_read_errors"`
	WriteErrs  uint64        `json:"tun_write_errors"`
}

func (d *daemon) status() status {
	s := status{
		Version: version, Dev: d.c.dev, CLATPrefix: d.c.clat.String(), PLATPrefix: *d.plat.Load(),
		ClientNet: d.c.clientNet.String(), MTU: d.c.mtu, Queues: len(d.workers), Offload: !d.c.noOffload,
		UptimeSec: int64(time.Since(d.started).Seconds()),
	}
	s.Counters.Drops = map[string]uint64{}
	for _, w := range d.workers {
		s.Counters.Add(&w.tr.Stats)
		s.ReadErrs += w.readErrs.Load()
		s.WriteErrs += w.writeErrs.Load()
	}
	return s
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

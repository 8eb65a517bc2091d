package prefixd

import (
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/gluon-464xlat/gluon-464xlat/internal/ctlsock"
	"github.com/gluon-464xlat/gluon-464xlat/internal/status"
)

// peer is a daemon that must know the chosen PLAT (clatd, l3roamd). prefixd
// compares its get_platprefix with the choice every tick and sets it when
// they differ, so a daemon that starts (or restarts) later gets the state.
type peer struct {
	name, sock string

	syncing  sync.Mutex // one sync at a time: after a switch and on the tick they would race
	mu       sync.Mutex
	want     string
	gone     []string // PLATs to announce as dead (del_platprefix), l3roamd only
	synced   bool
	lastErr  string
	loggedAt time.Time
}

func (p *peer) set(plat string, gone string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.want = plat
	if gone != "" {
		p.gone = append(p.gone, gone)
	}
	p.synced = false
}

// sync brings the peer up to date; errors are logged at most every 30 s
// (the peer may simply not run yet) and retried on the next tick.
func (p *peer) sync() {
	if !p.syncing.TryLock() {
		return // one is running; the next tick checks again
	}
	defer p.syncing.Unlock()
	p.mu.Lock()
	want, gone := p.want, append([]string(nil), p.gone...)
	p.mu.Unlock()
	err := func() error {
		for _, g := range gone {
			if reply, err := ctlsock.Query(p.sock, "del_platprefix "+g); err != nil {
				return err
			} else if strings.HasPrefix(reply, "error") {
				slog.Warn("peer refused del_platprefix", "peer", p.name, "reply", reply)
			}
		}
		p.mu.Lock()
		p.gone = p.gone[min(len(gone), len(p.gone)):]
		p.mu.Unlock()
		have, err := ctlsock.Query(p.sock, "get_platprefix")
		if err != nil {
			return err
		}
		if have == want {
			return nil
		}
		cmd := "set_platprefix " + want
		if want == "" {
			cmd = "del_platprefix"
		}
		reply, err := ctlsock.Query(p.sock, cmd)
		if err != nil {
			return err
		}
		if reply != "ok" {
			return errString(reply)
		}
		slog.Info("told the PLAT prefix", "peer", p.name, "plat", want)
		return nil
	}()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.synced, p.lastErr = false, err.Error()
		if time.Since(p.loggedAt) > 30*time.Second {
			p.loggedAt = time.Now()
			slog.Warn("cannot reach peer; retrying", "peer", p.name, "socket", p.sock, "err", err)
		}
		return
	}
	p.synced, p.lastErr = true, ""
}

func (p *peer) status() status.Peer {
	p.mu.Lock()
	defer p.mu.Unlock()
	return status.Peer{Socket: p.sock, Synced: p.synced, Error: p.lastErr}
}

type errString string

func (e errString) Error() string { return string(e) }

package l3roamd

import (
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gluon-464xlat/gluon-464xlat/internal/ctlsock"
)

// clatdPeer tells clatd which clients roamed here (set_roamed): this
// node rewrites their packets in netfilter (xtables.go, nft.go), and
// clatd's fast path sends UDP and ICMP echo out past netfilter unless it
// knows. Every apply updates what clatd should have; a goroutine brings
// clatd up to date at once and checks it every 5 s (get_roamed), so a
// clatd that starts or restarts later gets the list too.
type clatdPeer struct {
	sock string
	kick chan struct{}

	mu       sync.Mutex
	want     string // set_roamed's arguments: the clients, sorted
	loggedAt time.Time
}

func newClatdPeer(sock string) *clatdPeer {
	return &clatdPeer{sock: sock, kick: make(chan struct{}, 1)}
}

// set records the clients that roamed here (natNeeds' keys).
func (p *clatdPeer) set(need map[netip.Addr]roamedHere) {
	if p == nil {
		return
	}
	ips := make([]netip.Addr, 0, len(need))
	for a := range need {
		ips = append(ips, a)
	}
	slices.SortFunc(ips, netip.Addr.Compare)
	s := make([]string, len(ips))
	for i, a := range ips {
		s[i] = a.String()
	}
	want := strings.Join(s, " ")
	p.mu.Lock()
	changed := want != p.want
	p.want = want
	p.mu.Unlock()
	if changed {
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
}

func (p *clatdPeer) run(done <-chan struct{}) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-p.kick:
		case <-t.C:
		}
		p.sync()
	}
}

func (p *clatdPeer) sync() {
	p.mu.Lock()
	want := p.want
	p.mu.Unlock()
	have, err := ctlsock.Query(p.sock, "get_roamed")
	if err == nil && have != want {
		var reply string
		if reply, err = ctlsock.Query(p.sock, strings.TrimSpace("set_roamed "+want)); err == nil && reply != "ok" {
			err = errors.New(reply)
		}
		if err == nil {
			slog.Info("told clatd the clients that roamed here", "clients", len(strings.Fields(want)))
		}
	}
	// clatd may not run (yet): said at most every 30 s
	if err != nil && time.Since(p.loggedAt) > 30*time.Second {
		p.loggedAt = time.Now()
		slog.Warn("clatd not told the clients that roamed here", "socket", p.sock, "err", err)
	}
}

package prefixd

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/gluon-464xlat/gluon-464xlat/internal/babel"
	"github.com/gluon-464xlat/gluon-464xlat/internal/ctlsock"
)

// fakeBabeld greets like babeld, answers "monitor" with the given lines,
// keeps the connection for hold and hangs up (then calls hungUp, if any):
// the route source must count the malformed lines, keep the good ones, and
// reconnect when babeld comes back.
func fakeBabeld(t *testing.T, path string, lines []string, hold time.Duration, hungUp func()) net.Listener {
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprint(c, "BABEL 1.0\nversion fake\nok\n")
			sc := bufio.NewScanner(c)
			if sc.Scan() && sc.Text() == "monitor" {
				for _, l := range lines {
					fmt.Fprintln(c, l)
				}
			}
			time.Sleep(hold)
			c.Close()
			if hungUp != nil {
				hungUp()
			}
		}
	}()
	return ln
}

func TestRouteSourceSurvivesMalformedLinesAndReconnects(t *testing.T) {
	path := filepath.Join(t.TempDir(), "babeld.sock")
	good := "add route 1 prefix fddd:1337:1338::1:0:0/96 from ::/0 installed yes id r1 metric 96 refmetric 0 via fe80::1 if m0"
	ln := fakeBabeld(t, path, []string{
		"add route 2 prefix fddd:1337:1338::2:0:0/96 from ::/0 installed yes id r2 metric lots",
		"\x00\x01\x02 garbage",
		"add route 3 prefix not-a-prefix from ::/0 installed yes id r3 metric 96",
		good,
	}, 200*time.Millisecond, nil)
	defer ln.Close()
	s := &routeSource{addr: path, platRange: netip.MustParsePrefix("fddd:1337:1338::/48"), table: babel.NewTable(), change: make(chan struct{}, 1)}
	done := make(chan struct{})
	defer close(done)
	go s.run(done)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		routes, mode, bad := s.routes()
		if mode == "babel-socket" && bad >= 2 && len(routes) == 1 {
			if _, ok := routes[netip.MustParsePrefix("fddd:1337:1338::1:0:0/96")]; !ok {
				t.Fatalf("wrong route kept: %v", routes)
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	routes, mode, bad := s.routes()
	t.Fatalf("routes %v mode %s malformed %d", routes, mode, bad)
}

// After a switch away from a dead PLAT, prefixd syncs its peers at once and
// again on its tick; the two used to race on the list of dead PLATs and
// crash prefixd (found by the demo). Many concurrent syncs against a live
// socket: no panic, each dead PLAT announced, the peer in sync.
func TestConcurrentPeerSyncs(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "peer.sock")
	var mu sync.Mutex
	var dels []string
	plat := ""
	srv, err := ctlsock.Listen(sock, map[string]ctlsock.Handler{
		"get_platprefix": func([]string) (any, error) { mu.Lock(); defer mu.Unlock(); return plat, nil },
		"set_platprefix": func(a []string) (any, error) { mu.Lock(); defer mu.Unlock(); plat = a[0]; return "ok", nil },
		"del_platprefix": func(a []string) (any, error) {
			mu.Lock()
			defer mu.Unlock()
			dels = append(dels, a...)
			return "ok", nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	p := &peer{name: "l3roamd", sock: sock}
	for round := 0; round < 20; round++ {
		p.set(fmt.Sprintf("fddd::%d:0:0/96", round), fmt.Sprintf("fddd::%d:0:0/96", round+100))
		var wg sync.WaitGroup
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() { defer wg.Done(); p.sync() }()
		}
		wg.Wait()
		p.sync()
	}
	if !p.status().Synced || plat != "fddd::19:0:0/96" || len(dels) < 20 {
		t.Fatalf("synced %v plat %q dels %d", p.status().Synced, plat, len(dels))
	}
}

// Each reconnection to babeld used to leave a goroutine behind (waiting for
// the daemon's end to close a connection long gone): babeld restarting or
// hanging up over months grew prefixd without bound. After many reconnects
// the goroutine count is what it was.
func TestRouteSourceReconnectsLeaveNothingBehind(t *testing.T) {
	path := filepath.Join(t.TempDir(), "babeld.sock")
	conns := make(chan struct{}, 1000)
	ln := fakeBabeld(t, path, nil, 0, func() { conns <- struct{}{} }) // hangs up at once
	defer ln.Close()
	s := &routeSource{addr: path, platRange: netip.MustParsePrefix("fddd:1337:1338::/48"), table: babel.NewTable(), change: make(chan struct{}, 1)}
	done := make(chan struct{})
	go s.run(done)
	for i := 0; i < 5; i++ { // settle
		<-conns
	}
	before := runtime.NumGoroutine()
	for i := 0; i < 200; i++ {
		<-conns
	}
	after := runtime.NumGoroutine()
	close(done)
	if after > before+3 {
		t.Fatalf("%d goroutines after 200 reconnects, %d before", after, before)
	}
}

package prefixd

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/gluon-464xlat/gluon-464xlat/internal/babel"
)

// fakeBabeld greets like babeld, answers "monitor" with the given lines and
// hangs up: the route source must count the malformed ones, keep the good
// ones, and reconnect when babeld comes back.
func fakeBabeld(t *testing.T, path string, lines []string) net.Listener {
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
			time.Sleep(200 * time.Millisecond)
			c.Close()
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
	})
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

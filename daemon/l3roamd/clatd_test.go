package l3roamd

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gluon-464xlat/gluon-464xlat/internal/ctlsock"
)

// TestClatdIsToldTheRoamedClientsAgainAfterItRestarts: the clients that
// roamed here reach clatd's set_roamed, and a clatd that lost them (it
// restarted) gets them again on the next check. (The e2e roam tests show
// what clatd does with them.)
func TestClatdIsToldTheRoamedClientsAgainAfterItRestarts(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "clatd.sock")
	var have string
	sets := 0
	srv, err := ctlsock.Listen(sock, map[string]ctlsock.Handler{
		"get_roamed": func([]string) (any, error) { return have, nil },
		"set_roamed": func(a []string) (any, error) { have = strings.Join(a, " "); sets++; return "ok", nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	p := newClatdPeer(sock)
	p.set(map[netip.Addr]roamedHere{netip.MustParseAddr("10.130.0.10"): {}, netip.MustParseAddr("10.130.0.9"): {}})
	p.sync()
	if have != "10.130.0.9 10.130.0.10" || sets != 1 {
		t.Fatalf("clatd has %q after %d set_roamed", have, sets)
	}
	p.sync()
	if sets != 1 {
		t.Errorf("set_roamed again although clatd had the list")
	}
	have = "" // clatd restarted
	p.sync()
	if have != "10.130.0.9 10.130.0.10" || sets != 2 {
		t.Errorf("after clatd's restart it has %q", have)
	}
	p.set(nil)
	p.sync()
	if have != "" || sets != 3 {
		t.Errorf("the last client left, clatd still has %q", have)
	}
}

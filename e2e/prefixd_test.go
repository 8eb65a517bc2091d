package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/gluon-464xlat/gluon-464xlat/internal/ctlsock"
	"github.com/gluon-464xlat/gluon-464xlat/internal/netlab"
)

func TestPrefixdChoosesAndFailsOver(t *testing.T) {
	l := newMeshLab(t)
	l.start(t)
	// P1 is one hop away (metric 96), P2 two (192).
	l.waitPLAT(t, meshP1, 20*time.Second)
	if got := l.exitCarries(t); got != "exit1" {
		t.Fatalf("nearest PLAT chosen, but traffic leaves through %s", got)
	}
	if reply, _ := ctlsock.Query(l.sock["clatd@"+l.node1], "get_platprefix"); reply != meshP1 {
		t.Fatalf("clatd was not told: %q", reply)
	}

	t.Run("a cost rise below the threshold does not move the choice", func(t *testing.T) {
		l.setCost(t, 200) // P1 200 vs P2 192: better by 8 < 150
		time.Sleep(8 * time.Second)
		if got := l.current(t); got != meshP1 {
			out, _ := ctlsock.Query(l.sock["prefixd@"+l.node1], "status")
			t.Fatalf("moved to %s below the threshold: %s", got, out)
		}
	})
	t.Run("a cost rise over the threshold moves it, and the traffic", func(t *testing.T) {
		l.setCost(t, 400) // P1 400 vs P2 192: better by 208 > 150
		l.waitPLAT(t, meshP2, 20*time.Second)
		if got := l.exitCarries(t); got != "exit2" {
			t.Fatalf("traffic leaves through %s", got)
		}
	})
	t.Run("a metric swinging around the other PLAT's does not flap", func(t *testing.T) {
		// Back to P1: make P2 far for a moment.
		l.babelCmd(t, l.exit2, "flush interface m-n2", "interface m-n2 rxcost 600")
		l.setCost(t, 96)
		l.waitPLAT(t, meshP1, 20*time.Second)
		l.babelCmd(t, l.exit2, "flush interface m-n2", "interface m-n2 rxcost 96")
		l.waitRoute(t, meshP2, "m-n2", 192, true)
		before := len(statusOf(t, l.sock["prefixd@"+l.node1])["switches"].([]any))
		// P1's metric swings around P2's (192): 240 is worse, 150 better,
		// each by less than the margin (150). Choosing the lowest metric
		// would switch at every swing; prefixd stays on P1.
		for i := 0; i < 4; i++ {
			l.setCost(t, 240)
			time.Sleep(2 * time.Second)
			l.setCost(t, 150)
			time.Sleep(2 * time.Second)
		}
		sw := statusOf(t, l.sock["prefixd@"+l.node1])["switches"].([]any)
		if n := len(sw) - before; n != 0 || l.current(t) != meshP1 {
			t.Fatalf("%d switches (now on %s) while P1's metric swung around P2's 4 times, want none: %v", n, l.current(t), sw[before:])
		}
	})
	t.Run("killing the chosen exit moves traffic to the other", func(t *testing.T) {
		// Back to P1 first: P1 cheap again and P2 far.
		l.setCost(t, 96)
		l.babelCmd(t, l.exit2, "flush interface m-n2", "interface m-n2 rxcost 600")
		l.waitPLAT(t, meshP1, 20*time.Second)
		l.procs["platd@"+l.exit1].Signal(9)
		l.T(t).Must(l.exit1, "ip", "link", "set", "m-n1", "down")
		l.T(t).Must(l.exit1, "ip", "link", "set", "m-n1b", "down")
		l.waitPLAT(t, meshP2, 10*time.Second)
		if got := l.exitCarries(t); got != "exit2" {
			t.Fatalf("traffic leaves through %s", got)
		}
		// The switch away from P1 must name a failure (it may go through
		// "none" when P2 is itself still settling).
		sw := statusOf(t, l.sock["prefixd@"+l.node1])["switches"].([]any)
		var away map[string]any
		for _, x := range sw {
			if m := x.(map[string]any); m["from"] == meshP1 {
				away = m
			}
		}
		r, _ := away["reason"].(string)
		if !strings.Contains(r, "probes") && !strings.Contains(r, "lost") && !strings.Contains(r, "unreachable") {
			t.Errorf("leaving the dead exit: %v", away)
		}
	})
}

func TestPrefixdFallsBackToKernelRoutes(t *testing.T) {
	l := newMeshLab(t)
	l.start(t, "-babel", "/nonexistent/babeld.sock")
	l.waitPLAT(t, meshP1, 25*time.Second)
	st := statusOf(t, l.sock["prefixd@"+l.node1])
	if st["route_source"] != "kernel-routes" {
		t.Fatalf("route source %v", st["route_source"])
	}
	if !strings.Contains(l.procs["prefixd@"+l.node1].Log(), "following kernel routes of protocol babel") {
		t.Error("prefixd did not say it fell back")
	}
	if got := l.exitCarries(t); got != "exit1" {
		t.Fatalf("traffic leaves through %s", got)
	}
}

// babeld restarting and a peer (l3roamd) that is not running: logged and
// retried, prefixd carries on and returns to babeld's socket.
func TestPrefixdSurvivesBabeldRestartAndMissingPeer(t *testing.T) {
	l := newMeshLab(t)
	l.start(t, "-l3roamd-socket", l.Dir+"/no-l3roamd.sock")
	l.waitPLAT(t, meshP1, 20*time.Second)
	// The peers are told on prefixd's next tick after the choice.
	var peers map[string]any
	netlab.WaitFor(5*time.Second, func() bool {
		peers = statusOf(t, l.sock["prefixd@"+l.node1])["peers"].(map[string]any)
		return peers["clatd"].(map[string]any)["synced"] == true && peers["l3roamd"].(map[string]any)["error"] != nil
	})
	if p := peers["l3roamd"].(map[string]any); p["synced"] != false || p["error"] == nil {
		t.Errorf("missing l3roamd not reported: %v", p)
	}
	if p := peers["clatd"].(map[string]any); p["synced"] != true {
		t.Errorf("clatd not in sync: %v", p)
	}
	if !strings.Contains(l.procs["prefixd@"+l.node1].Log(), "cannot reach peer") {
		t.Error("missing l3roamd not logged")
	}
	// babeld on the node goes away and comes back.
	if err := l.procs["babeld@"+l.node1].Stop(); err != nil {
		t.Logf("babeld exit: %v", err)
	}
	if !netlab.WaitFor(10*time.Second, func() bool {
		return statusOf(t, l.sock["prefixd@"+l.node1])["route_source"] == "kernel-routes"
	}) {
		t.Fatal("prefixd did not notice babeld leaving")
	}
	// Back without the priced-out parallel link (it serves setCost only):
	// what is tested here is the reconnection, not the order in which
	// babeld relearns two links of very different cost.
	l.babeld(t, l.node1, "m-x1", "m-n2")
	if !netlab.WaitFor(20*time.Second, func() bool {
		return statusOf(t, l.sock["prefixd@"+l.node1])["route_source"] == "babel-socket"
	}) {
		t.Fatal("prefixd did not reconnect to babeld")
	}
	// The outage may have moved it to P2 (P1's route lost for longer than
	// -lost-grace while babeld relearns): let that happen first, then it
	// must come back to the nearest once the routes are quiet and probed.
	time.Sleep(3 * time.Second)
	l.waitPLAT(t, meshP1, 40*time.Second)
	if l.procs["prefixd@"+l.node1].Exited() {
		t.Fatal("prefixd died")
	}
	if got := l.exitCarries(t); got != "exit1" {
		st, _ := ctlsock.Query(l.sock["prefixd@"+l.node1], "status")
		c, _ := ctlsock.Query(l.sock["clatd@"+l.node1], "get_platprefix")
		t.Fatalf("traffic leaves through %s; clatd on %s; prefixd %s", got, c, st)
	}
}

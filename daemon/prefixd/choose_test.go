package prefixd

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

var (
	p1 = netip.MustParsePrefix("fddd:1337:1338:1::/96")
	p2 = netip.MustParsePrefix("fddd:1337:1338:2::/96")
	t0 = time.Unix(1000, 0)
)

func cands(m1, m2 int) map[netip.Prefix]candidate {
	return map[netip.Prefix]candidate{
		p1: {Prefix: p1, Metric: m1, Probed: true, ProbeOK: true},
		p2: {Prefix: p2, Metric: m2, Probed: true, ProbeOK: true},
	}
}

func newChooser() *chooser {
	return &chooser{policy: policy{absThreshold: 100, relThreshold: 0.25, holdDown: 30 * time.Second, maxFails: 3, lostGrace: 2 * time.Second}}
}

// At start the nearest PLAT wins even when a farther one's route came first.
func TestFirstChoiceWaitsForRoutesToSettle(t *testing.T) {
	ch := newChooser()
	ch.settle = 5 * time.Second
	only2 := map[netip.Prefix]candidate{p2: {Prefix: p2, Metric: 192, ProbeOK: true}}
	if _, ok := ch.decide(t0, only2); ok {
		t.Fatal("chose before the routes settled")
	}
	// P1 arrives at 5 s: the routes are not quiet yet.
	if _, ok := ch.decide(t0.Add(5*time.Second), cands(96, 192)); ok {
		t.Fatal("chose while routes were still arriving")
	}
	if rec, ok := ch.decide(t0.Add(8*time.Second), cands(96, 192)); !ok || rec.To != p1.String() {
		t.Fatalf("%+v", rec)
	}
}

// After every PLAT was lost, the next choice waits for the routes too.
func TestChoiceAfterTotalLossSettles(t *testing.T) {
	ch := newChooser()
	ch.settle = 5 * time.Second
	ch.decide(t0, cands(96, 192))
	ch.decide(t0.Add(5*time.Second), cands(96, 192))
	ch.decide(t0.Add(6*time.Second), map[netip.Prefix]candidate{})
	if rec, ok := ch.decide(t0.Add(9*time.Second), map[netip.Prefix]candidate{}); !ok || rec.To != "" {
		t.Fatalf("not lost: %+v", rec)
	}
	only2 := map[netip.Prefix]candidate{p2: {Prefix: p2, Metric: 192, ProbeOK: true}}
	if _, ok := ch.decide(t0.Add(10*time.Second), only2); ok {
		t.Fatal("chose the first route back before the others arrived")
	}
	ch.decide(t0.Add(15*time.Second), cands(96, 192))
	if rec, ok := ch.decide(t0.Add(18*time.Second), cands(96, 192)); !ok || rec.To != p1.String() {
		t.Fatalf("%+v", rec)
	}
}

// While babeld relearns its routes after a reconnect, a better metric does
// not move the choice (a failure still does).
func TestNoMetricSwitchWhileConverging(t *testing.T) {
	ch := newChooser()
	ch.decide(t0, cands(96, 192))
	ch.settle = 5 * time.Second
	now := t0.Add(time.Minute)
	ch.converging(now)
	if _, ok := ch.decide(now.Add(time.Second), cands(2000, 192)); ok {
		t.Fatal("switched on a converging metric")
	}
	if rec, ok := ch.decide(now.Add(6*time.Second), cands(2000, 192)); !ok || rec.To != p2.String() {
		t.Fatalf("no switch after convergence: %+v", rec)
	}
}

func TestChooseNearestFirst(t *testing.T) {
	ch := newChooser()
	if rec, ok := ch.decide(t0, cands(96, 192)); !ok || rec.To != p1.String() {
		t.Fatalf("%+v %v", rec, ok)
	}
}

func TestSwitchOnlyWhenThresholdCrossed(t *testing.T) {
	ch := newChooser()
	ch.decide(t0, cands(96, 192))
	now := t0.Add(time.Minute)
	// 288 vs 192: better by 96, margin max(100, 72) = 100: stay.
	if _, ok := ch.decide(now, cands(288, 192)); ok {
		t.Fatal("switched below the threshold")
	}
	// 300 vs 192: better by 108 > 100: switch.
	if rec, ok := ch.decide(now, cands(300, 192)); !ok || rec.To != p2.String() {
		t.Fatalf("did not switch above the threshold: %+v", rec)
	}
	// The relative margin applies to big metrics: 1000 vs 760 is 240 < 250.
	ch2 := newChooser()
	ch2.decide(t0, cands(96, 2000))
	if _, ok := ch2.decide(now, cands(1000, 760)); ok {
		t.Fatal("switched inside the relative margin")
	}
}

// One PLAT's metric swings around the other's (240 and 150 against 192),
// so a choice by the lowest metric would switch at every step. With the
// threshold nothing switches; with the threshold and the hold-down turned
// off, the same swing switches at every step: the test can see flapping.
func TestOscillationDoesNotFlap(t *testing.T) {
	swing := func(ch *chooser) int {
		ch.decide(t0, cands(96, 192)) // on P1
		switches := 0
		for i := 1; i <= 100; i++ {
			m := 240
			if i%2 == 0 {
				m = 150
			}
			if _, ok := ch.decide(t0.Add(time.Duration(i)*time.Minute), cands(m, 192)); ok {
				switches++
			}
		}
		return switches
	}
	if n := swing(newChooser()); n != 0 {
		t.Fatalf("%d switches while P1's metric swung 48 around P2's, want 0", n)
	}
	loose := newChooser()
	loose.absThreshold, loose.relThreshold, loose.holdDown = 0, 0, 0
	if n := swing(loose); n < 90 {
		t.Fatalf("without hysteresis the swing switched only %d times: the test could not see flapping", n)
	}
}

func TestHoldDownDelaysBetterMetric(t *testing.T) {
	ch := newChooser()
	ch.decide(t0, cands(96, 500))
	if _, ok := ch.decide(t0.Add(time.Second), cands(500, 96)); ok {
		t.Fatal("switched inside the hold-down")
	}
	if _, ok := ch.decide(t0.Add(31*time.Second), cands(500, 96)); !ok {
		t.Fatal("no switch after the hold-down")
	}
}

func TestLeaveLostUnreachableOrFailingRegardlessOfHoldDown(t *testing.T) {
	for name, c := range map[string]map[netip.Prefix]candidate{
		"lost":        {p2: {Prefix: p2, Metric: 500, ProbeOK: true}},
		"unreachable": cands(65535, 500),
	} {
		ch := newChooser()
		ch.decide(t0, cands(96, 500))
		if _, ok := ch.decide(t0.Add(time.Second), c); ok {
			t.Errorf("%s: left before the grace period", name)
		}
		rec, ok := ch.decide(t0.Add(3*time.Second), c) // grace over, still inside the hold-down
		if !ok || rec.To != p2.String() {
			t.Errorf("%s: %+v", name, rec)
		}
	}
	// A retraction shorter than the grace period changes nothing.
	ch := newChooser()
	ch.decide(t0, cands(96, 500))
	ch.decide(t0.Add(time.Second), cands(65535, 500))
	ch.decide(t0.Add(1500*time.Millisecond), cands(96, 500))
	if _, ok := ch.decide(t0.Add(4*time.Second), cands(65535, 500)); ok {
		t.Error("the grace period did not restart after the route came back")
	}
	// Unreachable and its last probe failed: both signals agree, at once.
	ch = newChooser()
	ch.decide(t0, cands(96, 500))
	both := map[netip.Prefix]candidate{p1: {Prefix: p1, Metric: 65535, Fails: 1}, p2: {Prefix: p2, Metric: 500, ProbeOK: true}}
	if rec, ok := ch.decide(t0.Add(100*time.Millisecond), both); !ok || rec.To != p2.String() {
		t.Errorf("unreachable and failing: %+v", rec)
	}
	// Failed probes: at once (they already took maxFails intervals).
	ch = newChooser()
	ch.decide(t0, cands(96, 500))
	fail := map[netip.Prefix]candidate{p1: {Prefix: p1, Metric: 96, Fails: 3}, p2: {Prefix: p2, Metric: 500, ProbeOK: true}}
	if rec, ok := ch.decide(t0.Add(time.Second), fail); !ok || rec.To != p2.String() {
		t.Errorf("probes: %+v", rec)
	}
	// Nothing left: no PLAT.
	ch = newChooser()
	ch.decide(t0, cands(96, 500))
	ch.decide(t0, map[netip.Prefix]candidate{})
	if rec, ok := ch.decide(t0.Add(3*time.Second), map[netip.Prefix]candidate{}); !ok || rec.To != "" {
		t.Errorf("all lost: %+v", rec)
	}
}

func TestNoSwitchToUnprobedChallenger(t *testing.T) {
	ch := newChooser()
	ch.decide(t0, cands(500, 600))
	c := cands(500, 96)
	c[p2] = candidate{Prefix: p2, Metric: 96} // not yet answered a probe
	if _, ok := ch.decide(t0.Add(time.Minute), c); ok {
		t.Fatal("switched to a PLAT that has not answered a probe")
	}
}

// A choice made while babeld was away (its routes flushed) is made afresh
// once babeld is back and has converged, threshold or not; later metric
// changes are under the threshold again.
func TestReChoiceOnceAfterBabeldReturns(t *testing.T) {
	ch := newChooser()
	ch.settle = 5 * time.Second
	ch.decide(t0, cands(96, 192))
	ch.decide(t0.Add(5*time.Second), cands(96, 192)) // on P1
	only2 := map[netip.Prefix]candidate{p2: {Prefix: p2, Metric: 192, ProbeOK: true}}
	ch.decide(t0.Add(10*time.Second), only2)
	if rec, ok := ch.decide(t0.Add(13*time.Second), only2); !ok || rec.To != p2.String() {
		t.Fatalf("P1 lost, no move to P2: %+v", rec)
	}
	back := t0.Add(20 * time.Second)
	ch.converging(back)
	if _, ok := ch.decide(back.Add(time.Second), cands(96, 192)); ok {
		t.Fatal("switched before babeld converged")
	}
	rec, ok := ch.decide(back.Add(6*time.Second), cands(96, 192))
	if !ok || rec.To != p1.String() || !strings.Contains(rec.Reason, "re-choice") {
		t.Fatalf("no re-choice of the nearer PLAT: %+v %v", rec, ok)
	}
	// Once only: P2 slightly better later does not move it (threshold 96).
	if rec, ok := ch.decide(back.Add(3*time.Minute), cands(150, 100)); ok {
		t.Fatalf("second free switch: %+v", rec)
	}
}

// A challenger that is better for a moment (Babel moving a route between
// links reports the old link's price for a few milliseconds) does not win;
// one that stays better for the dwell time does.
func TestBetterMetricMustLastTheDwellTime(t *testing.T) {
	ch := newChooser()
	ch.dwell = 2 * time.Second
	ch.decide(t0, cands(96, 192))
	at := t0.Add(time.Minute)
	if _, ok := ch.decide(at, cands(2000, 192)); ok {
		t.Fatal("switched on a spike")
	}
	if _, ok := ch.decide(at.Add(100*time.Millisecond), cands(96, 192)); ok {
		t.Fatal("switched after the spike")
	}
	if _, ok := ch.decide(at.Add(time.Second), cands(400, 192)); ok {
		t.Fatal("switched at once")
	}
	if _, ok := ch.decide(at.Add(2500*time.Millisecond), cands(400, 192)); ok {
		t.Fatal("switched before the dwell time")
	}
	if rec, ok := ch.decide(at.Add(3100*time.Millisecond), cands(400, 192)); !ok || rec.To != p2.String() {
		t.Fatalf("no switch after the dwell time: %+v", rec)
	}
}

// At boot the nearest PLAT can fail its probes for a while (its way back to
// this node's CLAT prefix is still being learned): the first choice falls
// on a farther one, and the margin would keep it there for good (seen on
// Gluon nodes: 96 against 192, margin 96). Once that nearer PLAT answers,
// it is chosen, once, without the margin.
func TestFirstChoiceMadeWhileTheNearestFailedIsRedoneOnce(t *testing.T) {
	ch := newChooser()
	ch.settle = 5 * time.Second
	failing := map[netip.Prefix]candidate{
		p1: {Prefix: p1, Metric: 96, Probed: true, Fails: 3},
		p2: {Prefix: p2, Metric: 192, Probed: true, ProbeOK: true},
	}
	ch.decide(t0, failing)
	if rec, ok := ch.decide(t0.Add(6*time.Second), failing); !ok || rec.To != p2.String() {
		t.Fatalf("first choice %+v", rec)
	}
	// P1 answers from 10 s on; its metric is 96 better, not more.
	rec, ok := ch.decide(t0.Add(10*time.Second), cands(96, 192))
	if !ok || rec.To != p1.String() || !strings.Contains(rec.Reason, "re-choice") {
		t.Fatalf("the nearest PLAT that recovered was not chosen: %+v %v", rec, ok)
	}
	// Once: later, P2 better by less than the margin does not move it back.
	ch.decide(t0.Add(100*time.Second), cands(192, 96))
	if rec, ok := ch.decide(t0.Add(200*time.Second), cands(192, 96)); ok {
		t.Fatalf("a second re-choice: %+v", rec)
	}
}

// At boot a neighbour's routes can take Babel minutes (Gluon: update
// interval 300 s): the first choice falls on the only PLAT known, a farther
// one. A nearer PLAT that appears later is chosen once, without the margin;
// one that was known at the first choice is not (that is hysteresis).
func TestANearerPLATAppearingAfterTheFirstChoiceIsChosenOnce(t *testing.T) {
	ch := newChooser()
	ch.settle = 5 * time.Second
	only1 := map[netip.Prefix]candidate{p1: {Prefix: p1, Metric: 192, Probed: true, ProbeOK: true}}
	ch.decide(t0, only1)
	if rec, ok := ch.decide(t0.Add(6*time.Second), only1); !ok || rec.To != p1.String() {
		t.Fatalf("first choice %+v", rec)
	}
	// P2 appears after 5 minutes, 96 better (not more than the margin).
	ch.decide(t0.Add(300*time.Second), cands(192, 96))
	rec, ok := ch.decide(t0.Add(305*time.Second), cands(192, 96))
	if !ok || rec.To != p2.String() {
		t.Fatalf("the nearer PLAT that appeared was not chosen: %+v %v", rec, ok)
	}
	// Once: P1 better again by less than the margin stays a non-event.
	ch.decide(t0.Add(400*time.Second), cands(96, 192))
	if rec, ok := ch.decide(t0.Add(500*time.Second), cands(96, 192)); ok {
		t.Fatalf("a second re-choice: %+v", rec)
	}

	// Known at the first choice: hysteresis holds.
	ch = newChooser()
	ch.settle = 5 * time.Second
	ch.decide(t0, cands(96, 150))
	ch.decide(t0.Add(6*time.Second), cands(96, 150))
	ch.decide(t0.Add(60*time.Second), cands(180, 150))
	if rec, ok := ch.decide(t0.Add(70*time.Second), cands(180, 150)); ok {
		t.Fatalf("moved below the margin to a PLAT known at the first choice: %+v", rec)
	}
}

package prefixd

import (
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/gluon-464xlat/gluon-464xlat/internal/babel"
	"github.com/gluon-464xlat/gluon-464xlat/internal/status"
)

// candidate is one PLAT this node could use, as status shows it.
type candidate = status.Candidate

// policy is the hysteresis: a better PLAT must win by both margins, and not
// sooner than holdDown after the last switch; a PLAT whose route is lost,
// unreachable or failing its probes is left at once.
type policy struct {
	absThreshold int           // metric points
	relThreshold float64       // fraction of the current metric
	holdDown     time.Duration // between switches for a better metric
	dwell        time.Duration // a better PLAT must stay better this long: a metric
	// that spikes while Babel moves a route between links is not a reason
	maxFails  int           // consecutive failed probes that mark a PLAT down
	lostGrace time.Duration // a lost or unreachable current PLAT is left after this long:
	// Babel retracts a route briefly when a neighbour reconfigures an interface
	settle time.Duration // no first choice before Babel has had this long to converge
}

func (p policy) usable(c candidate) bool {
	return c.Metric < babel.Unreachable && c.Fails < p.maxFails
}

// margin is how much better a challenger's metric must be.
func (p policy) margin(current int) int {
	return max(p.absThreshold, int(p.relThreshold*float64(current)+0.5))
}

type switchRecord = status.Switch

// chooser holds the current choice and its history.
type chooser struct {
	policy
	current    netip.Prefix
	lastSwitch time.Time
	badSince   time.Time // when the current PLAT's route was first seen lost or unreachable
	started    time.Time // first decide call, or when the last PLAT was lost
	quietUntil time.Time // no switch for a better metric before: babeld (re)connected and converges
	// until then (after quietUntil) the choice is made afresh once, without
	// the threshold: a choice made while babeld was gone rested on no
	// routes at all, and hysteresis would keep it for good
	rechooseUntil time.Time
	// PLATs usable when the first choice was made: a nearer one that was
	// not (its routes can take Babel minutes at boot, or its probes failed
	// while its way back was being learned) is chosen once, without the
	// margin, within newcomerUntil
	usableAtFirst map[netip.Prefix]bool
	newcomerUntil time.Time
	challenger    netip.Prefix // the PLAT better by the margin, and since when
	betterSince   time.Time
	lastChange    time.Time // when the candidates' metrics last changed
	prev          map[netip.Prefix]int
	history       []switchRecord // newest last, at most maxHistory
	switches      uint64         // all of them, for the map's statistics
}

const maxHistory = 20

// best is the usable candidate with the lowest metric (probe-confirmed ones
// first, then by prefix for a stable order).
func (ch *chooser) best(cands map[netip.Prefix]candidate) (candidate, bool) {
	var list []candidate
	for _, c := range cands {
		if ch.usable(c) {
			list = append(list, c)
		}
	}
	if len(list) == 0 {
		return candidate{}, false
	}
	sort.Slice(list, func(i, j int) bool {
		a, b := list[i], list[j]
		if a.Metric != b.Metric {
			return a.Metric < b.Metric
		}
		if a.ProbeOK != b.ProbeOK {
			return a.ProbeOK
		}
		return a.Prefix.Addr().Less(b.Prefix.Addr())
	})
	return list[0], true
}

// decide applies the policy to the candidates; it returns the switch made,
// if any.
func (ch *chooser) decide(now time.Time, cands map[netip.Prefix]candidate) (switchRecord, bool) {
	ch.noteChanges(now, cands)
	best, haveBest := ch.best(cands)
	cur, haveCur := cands[ch.current]
	if haveCur && cur.Metric < babel.Unreachable {
		ch.badSince = time.Time{}
	}
	// a challenger: another PLAT better than the current by the margin
	beats := haveBest && haveCur && best.Prefix != ch.current && cur.Metric-best.Metric > ch.margin(cur.Metric)
	if !beats {
		ch.challenger = netip.Prefix{}
	}
	var reason string
	failed := false // leaving a failed PLAT does not use up the re-choice
	first := false
	to := ch.current
	switch {
	case !ch.current.IsValid():
		if ch.started.IsZero() {
			ch.started = now
		}
		settled := now.Sub(ch.started) >= ch.settle && now.Sub(ch.lastChange) >= ch.settle/2
		if !haveBest || !settled && now.Sub(ch.started) < 4*ch.settle {
			// At start, and after every PLAT was lost (babeld restarting),
			// let the routes arrive and go quiet before choosing: else the
			// first to arrive wins and a nearer one cannot beat the margin.
			return switchRecord{}, false
		}
		to, reason = best.Prefix, fmt.Sprintf("first choice, metric %d", best.Metric)
		first = true
	case (!haveCur || cur.Metric >= babel.Unreachable) && !(haveCur && cur.Fails > 0) && !ch.graceOver(now):
		// Babel alone says it is gone: wait out a transient retraction. When
		// the probes agree (the last one failed), leave at once.
		return switchRecord{}, false
	case !haveCur:
		reason, failed = "route to the current PLAT lost", true
	case cur.Metric >= babel.Unreachable:
		reason, failed = "current PLAT unreachable (metric 65535)", true
	case cur.Fails >= ch.maxFails:
		reason, failed = fmt.Sprintf("current PLAT failed %d probes in a row", cur.Fails), true
	case haveBest && best.Prefix != ch.current && best.ProbeOK && best.Metric < cur.Metric &&
		!now.Before(ch.quietUntil) && now.Before(ch.rechooseUntil) && now.Sub(ch.lastChange) >= ch.settle/2:
		to, reason = best.Prefix, fmt.Sprintf("re-choice after babeld came back, metric %d < %d", best.Metric, cur.Metric)
	case haveBest && best.Prefix != ch.current && best.ProbeOK && best.Metric < cur.Metric &&
		ch.usableAtFirst != nil && !ch.usableAtFirst[best.Prefix] && now.Before(ch.newcomerUntil) && now.Sub(ch.lastChange) >= ch.settle/2:
		to, reason = best.Prefix, fmt.Sprintf("re-choice: a nearer PLAT became usable after the first choice, metric %d < %d", best.Metric, cur.Metric)
		ch.usableAtFirst = nil // once
	case beats && best.ProbeOK && ch.betterFor(now, best.Prefix) >= ch.dwell && now.Sub(ch.lastSwitch) >= ch.holdDown && !now.Before(ch.quietUntil):
		to, reason = best.Prefix, fmt.Sprintf("better metric %d < %d by more than %d", best.Metric, cur.Metric, ch.margin(cur.Metric))
	default:
		return switchRecord{}, false
	}
	if to == ch.current { // the current one failed: take the best remaining, or none
		to = netip.Prefix{}
		if haveBest && best.Prefix != ch.current {
			to = best.Prefix
		}
	}
	rec := switchRecord{Time: now, From: prefixString(ch.current), To: prefixString(to), Reason: reason}
	ch.current, ch.lastSwitch, ch.badSince = to, now, time.Time{}
	if !failed {
		ch.rechooseUntil = time.Time{} // once
	}
	if first {
		ch.usableAtFirst = map[netip.Prefix]bool{}
		for p, c := range cands {
			ch.usableAtFirst[p] = ch.usable(c)
		}
		ch.newcomerUntil = now.Add(10 * time.Minute)
	}
	if !to.IsValid() {
		ch.started = now
	}
	ch.switches++
	ch.history = append(ch.history, rec)
	if len(ch.history) > maxHistory {
		ch.history = ch.history[1:]
	}
	return rec, true
}

func prefixString(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	return p.String()
}

// betterFor is how long p has been the challenger that beats the current
// PLAT by the margin (starting now if it just became it).
func (ch *chooser) betterFor(now time.Time, p netip.Prefix) time.Duration {
	if ch.challenger != p {
		ch.challenger, ch.betterSince = p, now
	}
	return now.Sub(ch.betterSince)
}

// graceOver starts or checks the grace period of a lost current PLAT.
func (ch *chooser) graceOver(now time.Time) bool {
	if ch.badSince.IsZero() {
		ch.badSince = now
	}
	return now.Sub(ch.badSince) >= ch.lostGrace
}

// converging tells the chooser that the routes are being relearned (babeld
// reconnected): metrics are not trusted for switching until settle passes.
func (ch *chooser) converging(now time.Time) {
	ch.quietUntil = now.Add(ch.settle)
	// a mesh may take a while to relearn everything: the window is wide,
	// the re-choice waits for quiet routes and a probed PLAT, and is once
	ch.rechooseUntil = now.Add(5 * time.Minute)
}

// noteChanges records when any candidate's metric last changed.
func (ch *chooser) noteChanges(now time.Time, cands map[netip.Prefix]candidate) {
	changed := len(cands) != len(ch.prev)
	for p, c := range cands {
		if m, ok := ch.prev[p]; !ok || m != c.Metric {
			changed = true
		}
	}
	if changed {
		ch.lastChange = now
		ch.prev = make(map[netip.Prefix]int, len(cands))
		for p, c := range cands {
			ch.prev[p] = c.Metric
		}
	}
}

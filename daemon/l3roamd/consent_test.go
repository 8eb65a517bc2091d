package l3roamd

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gluon-464xlat/gluon-464xlat/intercom"
	"github.com/gluon-464xlat/gluon-464xlat/internal/addrplan"
)

// testMesh carries intercom packets between unit-test daemons by address
// (node IP, CLAT::192.0.0.2, PLAT::192.0.0.1), as the mesh routes them; a
// packet to an address nobody has is lost. The daemons have no client
// device, so they touch no kernel state.
type testMesh struct {
	mu    sync.Mutex
	nodes map[netip.Addr]*daemon
	deaf  map[*daemon]bool // routed to, but what is sent to it is lost (a flooded intercom)
}

func (m *testMesh) node(t *testing.T, ip string, clat, ownPLAT netip.Prefix) *daemon {
	d := testDaemon()
	d.c.nodeIP, d.c.clat, d.c.ownPLAT = netip.MustParseAddr(ip), clat, ownPLAT
	d.plat = testPLAT
	t.Cleanup(func() { close(d.done) })
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.nodes == nil {
		m.nodes = map[netip.Addr]*daemon{}
	}
	m.nodes[d.c.nodeIP] = d
	if clat.IsValid() {
		m.nodes[addrplan.CLATOwn(clat)] = d
	}
	if ownPLAT.IsValid() {
		m.nodes[addrplan.PLATMgmt(ownPLAT)] = d
	}
	d.out = func(b []byte, dst, src netip.Addr) error {
		if !src.IsValid() {
			src = d.c.nodeIP
		}
		m.mu.Lock()
		peer := m.nodes[dst]
		if m.deaf[peer] {
			m.mu.Unlock()
			return nil
		}
		var all []*daemon
		for _, n := range m.nodes {
			if n != d && !slices.Contains(all, n) {
				all = append(all, n)
			}
		}
		m.mu.Unlock()
		if dst == intercom.Group { // every other node is a neighbour
			for _, n := range all {
				m.mu.Lock()
				deaf := m.deaf[n]
				m.mu.Unlock()
				if !deaf {
					go n.handle(append([]byte(nil), b...), src, dst)
				}
			}
			return nil
		}
		if peer == nil {
			return errors.New("no route")
		}
		go peer.handle(append([]byte(nil), b...), src, dst)
		return nil
	}
	return d
}

// leave takes d off the mesh: packets to it are lost.
func (m *testMesh) leave(d *daemon) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for a, n := range m.nodes {
		if n == d {
			delete(m.nodes, a)
		}
	}
}

var (
	testPLAT = netip.MustParsePrefix("fddd:1337:1338::1:0:0/96")
	clatC    = netip.MustParsePrefix("fddd:1337:1337::3:0:0/96")
	roamIP   = netip.MustParseAddr("10.130.0.10")
	roamMAC  = net.HardwareAddr{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc}
	homeAddr = addrplan.In96(clatD, roamIP)
)

func (d *daemon) counter(name string) uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.count[name]
}

// roamedTo is where the PLAT d sends the sessions of the test client
// (invalid: home).
func (d *daemon) roamedTo() netip.Addr {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.roams[homeAddr].now
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("waited 5 s for %s", what)
		}
	}
}

// serving makes d the node the test client got its lease at (it serves it
// and its sessions are bound to d's CLAT at the PLAT).
func serving(d *daemon) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.clients[roamMAC.String()] = &client{mac: roamMAC, ip4: roamIP}
	d.xlat[roamIP] = xlatState{clatd: d.c.clat, platc: testPLAT, expires: time.Now().Add(time.Hour)}
}

// claim moves the test client from node from to node to as l3roamd does:
// to claims it, from answers with INFO and INFO_XLAT, to sends the ROAM.
func claim(t *testing.T, from, to *daemon) {
	t.Helper()
	to.mu.Lock()
	to.clients[roamMAC.String()] = &client{mac: roamMAC, claiming: true}
	to.mu.Unlock()
	got := to.counter("info_xlat_received")
	from.handle(intercom.Claim(to.header(), roamMAC), to.c.nodeIP, from.c.nodeIP)
	waitUntil(t, "the INFO_XLAT", func() bool { return to.counter("info_xlat_received") > got })
}

// A CLAIM whose node-client IP has no route (babeld did not reinstall it
// on the node that last released the client) is flooded; the node that
// serves the client answers it and does not flood it on, the others do,
// once, with a lower TTL.
func TestClaimIsFloodedWhenTheNodeClientIPHasNoRoute(t *testing.T) {
	var m testMesh
	m.node(t, "fddd:1337:1::10", netip.Prefix{}, testPLAT)
	a := m.node(t, "fddd:1337:1::1", clatD, netip.Prefix{})
	b := m.node(t, "fddd:1337:1::2", clatB, netip.Prefix{})
	c := m.node(t, "fddd:1337:1::3", clatC, netip.Prefix{})
	serving(a)
	b.mu.Lock()
	cl := &client{mac: roamMAC, claiming: true}
	b.clients[roamMAC.String()] = cl
	b.mu.Unlock()
	b.claim(cl)
	if b.counter("info_xlat_received") != 1 || b.counter("claims_flooded") != 1 || b.counter("claims_unroutable") != 0 {
		t.Fatalf("B: %v", b.count)
	}
	waitUntil(t, "C flooding it on", func() bool { return c.counter("flooded_on") == 1 })
	if a.counter("claims_answered") != 1 || a.counter("flooded_on") != 0 {
		t.Errorf("A: %v", a.count)
	}
	// A client nobody serves: one flood, no answer, served as new at once.
	mac2 := net.HardwareAddr{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbd}
	cl2 := &client{mac: mac2, claiming: true}
	b.mu.Lock()
	b.clients[mac2.String()] = cl2
	b.mu.Unlock()
	start := time.Now()
	b.claim(cl2)
	if b.counter("claims_unroutable") != 1 || time.Since(start) > time.Second {
		t.Errorf("a new client waited %s: %v", time.Since(start), b.count)
	}
}

// docs/l3roamd-security.md, "consent": a PLAT moves a client's sessions
// only when the node that holds them says it handed the client over, with
// the token it gave the claimer; a node that has the site key but was not
// handed the client is refused, and a token buys one move.
func TestRoamNeedsTheConsentOfTheNodeHoldingTheSessions(t *testing.T) {
	consentTries, consentWait = []time.Duration{0, 50 * time.Millisecond}, 300*time.Millisecond
	defer func() {
		consentTries, consentWait = []time.Duration{0, 300 * time.Millisecond, time.Second}, 2*time.Second
	}()
	var m testMesh
	plat := m.node(t, "fddd:1337:1::10", netip.Prefix{}, testPLAT)
	a := m.node(t, "fddd:1337:1::1", clatD, netip.Prefix{})
	b := m.node(t, "fddd:1337:1::2", clatB, netip.Prefix{})
	c := m.node(t, "fddd:1337:1::3", clatC, netip.Prefix{})
	serving(a)

	// C has the key but not the client: its ROAM is refused by A.
	forge := func(token uint64, nonce uint32) {
		x := &intercom.XLAT{ClientIP: roamIP, Lease: 3600, CLATD: clatD, CLATB: clatC, Token: token}
		h := intercom.Header{TTL: 1, Nonce: nonce, Sender: c.c.nodeIP}
		plat.handle(intercom.Roam(h, x, c.c.key, uint32(time.Now().Unix())), addrplan.CLATOwn(clatC), addrplan.PLATMgmt(testPLAT))
	}
	forge(0, 1)
	forge(0x1234567, 2)
	waitUntil(t, "two refusals", func() bool { return plat.counter("dropped_roam_no_consent") == 2 })
	if plat.roamedTo().IsValid() || a.counter("consents_refused") != 2 {
		t.Fatalf("a ROAM without the holder's consent moved the sessions to %s; A: %v", plat.roamedTo(), a.count)
	}

	// A hands the client to B by a real CLAIM: B's ROAM is taken.
	claim(t, a, b)
	want := addrplan.In96(clatB, roamIP)
	waitUntil(t, "the sessions at B", func() bool { return plat.roamedTo() == want })
	if a.counter("consents_given") != 1 {
		t.Errorf("A: %v", a.count)
	}
	// B's ROAM again (it sends three copies): a duplicate, nothing asked.
	asked := plat.counter("consents_asked")
	b.mu.Lock()
	tokenA := a.handovers[roamIP].token
	b.mu.Unlock()
	// A's token is spent: asked again with another challenge, A says no.
	a.handle(intercom.ConsentAsk(plat.header(), &intercom.Consent{Challenge: 99, ClientIP: roamIP, Token: tokenA, CLATD: clatD, CLATB: clatC},
		plat.c.key, uint32(time.Now().Unix())), addrplan.PLATMgmt(testPLAT), addrplan.CLATOwn(clatD))
	if a.counter("consents_refused") != 3 {
		t.Errorf("A said yes twice to one token: %v", a.count)
	}
	// B holds the sessions now: C's ROAM, even with A's token, asks B.
	forge(tokenA, 3)
	waitUntil(t, "the refusal", func() bool { return plat.counter("dropped_roam_no_consent") == 3 })
	if plat.roamedTo() != want || b.counter("consents_refused") != 1 || plat.counter("consents_asked") != asked+1 {
		t.Fatalf("after C's ROAM with A's spent token: at %s; B %v", plat.roamedTo(), b.count)
	}

	// B renews the client's lease (a ROAM of its own, no token): B holds
	// the sessions, nobody is asked.
	b.sendRoam(roamIP, 7200, clatD, testPLAT, 0)
	waitUntil(t, "the renewal", func() bool { return plat.counter("roams_accepted") == 2 })
	if plat.counter("consents_asked") != asked+1 {
		t.Errorf("a renewal by the holder asked for consent: %v", plat.count)
	}

	// B hands it to C for real, and C home to A: each asks the holder of
	// the moment; home, the PLAT forgets the detour.
	claim(t, b, c)
	waitUntil(t, "the sessions at C", func() bool { return plat.roamedTo() == addrplan.In96(clatC, roamIP) })
	claim(t, c, a)
	waitUntil(t, "the sessions home", func() bool { return !plat.roamedTo().IsValid() })
	if b.counter("consents_given") != 1 || c.counter("consents_given") != 1 {
		t.Errorf("B %v C %v", b.count, c.count)
	}

	// A holder that does not answer: the ROAM is refused when the wait is over.
	claim(t, a, b)
	waitUntil(t, "the sessions at B", func() bool { return plat.roamedTo() == want })
	m.leave(b)
	c.mu.Lock()
	c.clients[roamMAC.String()] = &client{mac: roamMAC}
	c.xlat[roamIP] = xlatState{clatd: clatD, platc: testPLAT, expires: time.Now().Add(time.Hour)}
	c.mu.Unlock()
	c.sendRoam(roamIP, 3600, clatD, testPLAT, 42)
	waitUntil(t, "the timeout", func() bool { return plat.counter("dropped_roam_consent_timeout") == 1 })
	if plat.roamedTo() != want {
		t.Errorf("the sessions moved without an answer: %s", plat.roamedTo())
	}
}

// A CONSENT_REPLY counts only from the node asked, for the question asked;
// a CONSENT only to this node's CLAT address from a PLAT.
func TestConsentMessagesFromTheWrongPlaceAreRefused(t *testing.T) {
	var m testMesh
	plat := m.node(t, "fddd:1337:1::10", netip.Prefix{}, testPLAT)
	a := m.node(t, "fddd:1337:1::1", clatD, netip.Prefix{})
	plat.consents[7] = pendingConsent{holder: addrplan.CLATOwn(clatD), ip4: roamIP, reply: make(chan bool, 1)}
	reply := func(challenge uint64, ip4 netip.Addr, from netip.Addr) {
		r := &intercom.Consent{Challenge: challenge, ClientIP: ip4, Yes: true}
		plat.handle(intercom.ConsentReply(a.header(), r, a.c.key, uint32(time.Now().Unix())),
			from, addrplan.PLATMgmt(testPLAT))
	}
	reply(8, roamIP, addrplan.CLATOwn(clatD))
	reply(7, roamIP, addrplan.CLATOwn(clatC))
	reply(7, netip.MustParseAddr("10.130.0.11"), addrplan.CLATOwn(clatD))
	if plat.count["dropped_consent_reply_unsolicited"] != 1 || plat.count["dropped_consent_reply_wrong_source"] != 2 || len(plat.consents[7].reply) != 0 {
		t.Errorf("PLAT: %v", plat.count)
	}
	reply(7, roamIP, addrplan.CLATOwn(clatD))
	if len(plat.consents[7].reply) != 1 {
		t.Errorf("the holder's answer did not arrive: %v", plat.count)
	}
	ask := func(to, from netip.Addr) {
		q := &intercom.Consent{Challenge: 1, ClientIP: roamIP, Token: 1, CLATD: clatD, CLATB: clatB}
		a.handle(intercom.ConsentAsk(plat.header(), q, a.c.key, uint32(time.Now().Unix())), from, to)
	}
	ask(a.c.nodeIP, addrplan.PLATMgmt(testPLAT))
	ask(addrplan.CLATOwn(clatD), addrplan.CLATOwn(clatB))
	if a.count["dropped_consent_not_for_this_node"] != 1 || a.count["dropped_consent_not_from_plat"] != 1 || a.count["consents_refused"] != 0 {
		t.Errorf("A: %v", a.count)
	}
	// unsigned, or signed with another key: refused before anything else
	q := &intercom.Consent{Challenge: 2, ClientIP: roamIP, Token: 1, CLATD: clatD, CLATB: clatB}
	a.handle(intercom.ConsentAsk(plat.header(), q, []byte("another key entirely"), uint32(time.Now().Unix())), addrplan.PLATMgmt(testPLAT), addrplan.CLATOwn(clatD))
	if a.count["dropped_bad_auth"] != 1 {
		t.Errorf("A: %v", a.count)
	}
}

// A holder answers at most consentRate CONSENTs a second: a flood of
// questions is not a flood of answers.
func TestConsentAnswersAreRateLimited(t *testing.T) {
	var m testMesh
	plat := m.node(t, "fddd:1337:1::10", netip.Prefix{}, testPLAT)
	a := m.node(t, "fddd:1337:1::1", clatD, netip.Prefix{})
	for i := 0; i < 200; i++ {
		q := &intercom.Consent{Challenge: uint64(i), ClientIP: roamIP, Token: 1, CLATD: clatD, CLATB: clatB}
		a.handle(intercom.ConsentAsk(plat.header(), q, a.c.key, uint32(time.Now().Unix())), addrplan.PLATMgmt(testPLAT), addrplan.CLATOwn(clatD))
	}
	if a.count["consents_refused"] > 2*consentRate || a.count["consent_rate_limited"] < 200-2*consentRate {
		t.Errorf("A: %v", a.count)
	}
}

// A node whose 15 CLAIMs had a route but no answer (the old node's
// intercom flooded) serves the client, and goes on claiming it: once the
// old node hears it, it hands the client over (INFO, INFO_XLAT) and stops
// serving it. Without the late CLAIMs both served it (seen in the e2e
// flood of forged intercom, under load).
func TestUnansweredClaimsGoOnAfterTheClientIsServed(t *testing.T) {
	claimEvery, lateClaims = 5*time.Millisecond, []time.Duration{50 * time.Millisecond, 50 * time.Millisecond, 50 * time.Millisecond,
		50 * time.Millisecond, 50 * time.Millisecond, 50 * time.Millisecond, 50 * time.Millisecond, 50 * time.Millisecond}
	defer func() {
		claimEvery = 300 * time.Millisecond
		lateClaims = []time.Duration{time.Second, time.Second, time.Second, time.Second, time.Second,
			time.Second, time.Second, time.Second, time.Second, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}
	}()
	var m testMesh
	m.node(t, "fddd:1337:1::10", netip.Prefix{}, testPLAT)
	a := m.node(t, "fddd:1337:1::1", clatD, netip.Prefix{})
	b := m.node(t, "fddd:1337:1::2", clatB, netip.Prefix{})
	serving(a)
	m.mu.Lock()
	m.nodes[nodeClientIP(a.c.nodeClient, roamMAC)] = a // A holds the client's node-client IP
	m.deaf = map[*daemon]bool{a: true}
	m.mu.Unlock()
	cl := &client{mac: roamMAC, claiming: true}
	b.mu.Lock()
	b.clients[roamMAC.String()] = cl
	b.mu.Unlock()
	done := make(chan struct{})
	go func() { b.claim(cl); close(done) }()
	waitUntil(t, "B serving the client unanswered", func() bool { return b.counter("claims_unanswered") == 1 })
	m.mu.Lock()
	m.deaf = nil // the flood is over
	m.mu.Unlock()
	waitUntil(t, "A handing the client over", func() bool {
		return a.counter("claims_answered") >= 1 && b.counter("info_xlat_received") == 1
	})
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("B still claims after the INFO")
	}
	if b.counter("claims_late") == 0 {
		t.Errorf("B: %v", b.count)
	}
}

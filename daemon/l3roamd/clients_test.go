package l3roamd

import (
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gluon-464xlat/gluon-464xlat/intercom"
)

// fakeKernel records what the state machine asks of the kernel.
type fakeKernel struct {
	mu       sync.Mutex
	served   map[string]servedClient // by MAC: what serve put in place
	released []string                // MACs, in order
	bridge   map[string]bool         // the client bridge's MACs (nil: no bridge)
}

type servedClient struct {
	nodeClient, ip4 netip.Addr
	ip6             []netip.Addr
}

func (k *fakeKernel) serve(mac net.HardwareAddr, nc, ip4 netip.Addr, ip6 []netip.Addr) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.served[mac.String()] = servedClient{nc, ip4, append([]netip.Addr(nil), ip6...)}
	return nil
}

func (k *fakeKernel) release(mac net.HardwareAddr, nc, ip4 netip.Addr, ip6 []netip.Addr) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.served, mac.String())
	k.released = append(k.released, mac.String())
}

func (k *fakeKernel) bridgeMACs() map[string]bool              { return k.bridge }
func (k *fakeKernel) probe(netip.Addr, net.HardwareAddr) error { return nil }
func (k *fakeKernel) hasHostRoute(netip.Addr) bool             { return false }
func (k *fakeKernel) isLocalMAC(net.HardwareAddr) bool         { return false }
func (k *fakeKernel) state(mac net.HardwareAddr) (servedClient, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	s, ok := k.served[mac.String()]
	return s, ok
}

func kernelOf(d *daemon) *fakeKernel { return d.k.(*fakeKernel) }

// The client state machine, message by message and timer by timer, with
// the kernel recorded: a client new to the mesh is served with its
// node-client IP; a node that claims it gets its addresses (INFO) and
// IPv4 state (INFO_XLAT), the old node releases everything in the kernel;
// an unsolicited or forged INFO changes nothing; a client the bridge
// forgot is released after the grace, one that comes back is not.
func TestClientStateMachineAndTheKernel(t *testing.T) {
	var m testMesh
	m.node(t, "fddd:1337:1::10", netip.Prefix{}, testPLAT)
	a := m.node(t, "fddd:1337:1::1", clatD, netip.Prefix{})
	b := m.node(t, "fddd:1337:1::2", clatB, netip.Prefix{})
	for _, d := range []*daemon{a, b} {
		d.prefix6 = []netip.Prefix{netip.MustParsePrefix("2001:db8:2::/64")}
	}
	ip6 := netip.MustParseAddr("2001:db8:2::10")
	nc := nodeClientIP(a.c.nodeClient, roamMAC)

	// new to the mesh: nobody answers the flood, A serves it
	a.learn(roamMAC, netip.Addr{})
	waitUntil(t, "A serving", func() bool { _, ok := kernelOf(a).state(roamMAC); return ok })
	a.learn(roamMAC, ip6)
	a.learn(roamMAC, roamIP)
	if s, _ := kernelOf(a).state(roamMAC); s.nodeClient != nc || s.ip4 != roamIP || !slices.Contains(s.ip6, ip6) || a.counter("claims_unroutable") != 1 {
		t.Fatalf("A's kernel: %+v, counters %v", s, a.count)
	}
	a.mu.Lock()
	if x := a.xlat[roamIP]; x.clatd != clatD || x.platc != testPLAT {
		t.Errorf("A's 464xlat state for its own client: %+v", x)
	}
	a.mu.Unlock()

	// an INFO nobody asked for: counted, nothing served
	b.handle(intercom.Info(a.header(), testPLAT.Addr(), roamMAC, []netip.Addr{ip6}), a.c.nodeIP, b.c.nodeIP)
	if _, ok := kernelOf(b).state(roamMAC); ok || b.counter("infos_unsolicited") != 1 {
		t.Fatalf("B after an unsolicited INFO: %v", b.count)
	}
	// an INFO_XLAT signed with another key: refused
	x := &intercom.XLAT{MAC: roamMAC, ClientIP: roamIP, Lease: 60, CLATD: clatD, PLATC: testPLAT}
	b.handle(intercom.InfoXLAT(a.header(), x, []byte("not the mesh's key at all"), uint32(time.Now().Unix())), a.c.nodeIP, b.c.nodeIP)
	if b.counter("dropped_bad_auth") != 1 {
		t.Fatalf("B: %v", b.count)
	}

	// B sees the client: CLAIM (unicast fails here: no route; flooded);
	// A answers, releases it in the kernel; B serves what A knew.
	b.learn(roamMAC, netip.Addr{})
	waitUntil(t, "B serving", func() bool {
		s, ok := kernelOf(b).state(roamMAC)
		return ok && s.ip4 == roamIP && slices.Contains(s.ip6, ip6)
	})
	waitUntil(t, "A releasing", func() bool { _, ok := kernelOf(a).state(roamMAC); return !ok })
	waitUntil(t, "B's INFO_XLAT", func() bool { return b.counter("info_xlat_received") == 1 })
	if a.knows(roamMAC) || a.counter("claims_answered") != 1 || b.counter("info_xlat_received") != 1 {
		t.Fatalf("A %v, B %v", a.count, b.count)
	}
	b.mu.Lock()
	if x := b.xlat[roamIP]; x.clatd != clatD || x.platc != testPLAT {
		t.Errorf("B's 464xlat state for the roamed client: %+v", x)
	}
	b.mu.Unlock()
	waitUntil(t, "A's INFO acknowledged", func() bool { return a.counter("acks_received") == 1 })

	// The bridge forgets the client: reconcile marks it gone, forgotten
	// (released) after the grace; a client seen again within it stays.
	kb := kernelOf(b)
	kb.bridge = map[string]bool{}
	b.reconcileFDB(time.Now())
	b.forgetGone(time.Now().Add(b.c.goneGrace / 2))
	if _, ok := kb.state(roamMAC); !ok {
		t.Fatal("released within the grace")
	}
	b.learn(roamMAC, netip.Addr{}) // back
	b.forgetGone(time.Now().Add(2 * b.c.goneGrace))
	if _, ok := kb.state(roamMAC); !ok {
		t.Fatal("a client seen again was released")
	}
	b.markGone(roamMAC)
	b.forgetGone(time.Now().Add(2 * b.c.goneGrace))
	if _, ok := kb.state(roamMAC); ok || b.knows(roamMAC) || b.counter("clients_expired") != 1 || b.counter("clients_gone_by_reconcile") != 1 {
		t.Fatalf("after the grace: B %v", b.count)
	}
	// its IPv4 state outlives it until the lease ends (it may come back)
	b.mu.Lock()
	_, kept := b.xlat[roamIP]
	b.mu.Unlock()
	if !kept {
		t.Error("the roamed client's IPv4 state went with the client")
	}
}

// A client whose MAC left the client bridge (its port went, a station
// event) keeps its routes here for awayGrace only: a node it moved to
// that does not claim it (the C l3roamd, now and then) announces it, and
// the mesh must take that node's route. Its record stays, so a late CLAIM
// is still answered; seen again, it is served again.
func TestGoneClientsRoutesAreWithdrawnAfterAwayGrace(t *testing.T) {
	var m testMesh
	a := m.node(t, "fddd:1337:1::1", clatD, netip.Prefix{})
	a.prefix6 = []netip.Prefix{netip.MustParsePrefix("2001:db8:2::/64")}
	a.learn(roamMAC, netip.Addr{})
	waitUntil(t, "A serving", func() bool { _, ok := kernelOf(a).state(roamMAC); return ok })
	a.learn(roamMAC, netip.MustParseAddr("2001:db8:2::10"))

	gone := time.Now()
	a.markGone(roamMAC)
	if _, ok := kernelOf(a).state(roamMAC); !ok {
		t.Fatal("withdrawn at once")
	}
	a.withdrawGone(time.Now())
	if _, ok := kernelOf(a).state(roamMAC); !ok {
		t.Fatal("withdrawn before awayGrace")
	}
	waitUntil(t, "A withdrawing", func() bool { a.withdrawGone(time.Now()); _, ok := kernelOf(a).state(roamMAC); return !ok })
	if took := time.Since(gone); took < awayGrace || !a.knows(roamMAC) || a.counter("clients_withdrawn") != 1 {
		t.Fatalf("withdrawn after %v, known %v, counters %v", took, a.knows(roamMAC), a.count)
	}
	if _, listed := a.clientList().List[roamMAC.String()]; listed {
		t.Error("get_clients lists a withdrawn client")
	}
	// the kernel's own neighbour entries say nothing about presence
	a.learn(roamMAC, netip.MustParseAddr("2001:db8:2::10"))
	if _, ok := kernelOf(a).state(roamMAC); ok {
		t.Fatal("served again on a neighbour-table event")
	}
	a.learn(roamMAC, netip.Addr{}) // back: a frame on the bridge; claimed again, then served
	waitUntil(t, "A serving again", func() bool { s, ok := kernelOf(a).state(roamMAC); return ok && len(s.ip6) == 1 })
	// gone again and back within awayGrace: nothing withdrawn
	a.markGone(roamMAC)
	a.learn(roamMAC, netip.Addr{})
	a.withdrawGone(time.Now().Add(2 * awayGrace))
	if _, ok := kernelOf(a).state(roamMAC); !ok || a.counter("clients_withdrawn") != 1 {
		t.Fatalf("withdrawn though back in time: %v", a.count)
	}
}

// A crowd that leaves together is withdrawn withdrawPerTick at a time.
func TestWithdrawingACrowdIsBounded(t *testing.T) {
	var m testMesh
	a := m.node(t, "fddd:1337:1::1", clatD, netip.Prefix{})
	for i := 0; i < 40; i++ {
		mac := net.HardwareAddr{2, 0, 0, 0, 1, byte(i)}
		a.mu.Lock()
		a.clients[mac.String()] = &client{mac: mac}
		a.mu.Unlock()
		a.markGone(mac)
	}
	a.withdrawGone(time.Now().Add(2 * awayGrace))
	if n := a.counter("clients_withdrawn"); n != withdrawPerTick {
		t.Fatalf("%d withdrawn in one tick, want %d", n, withdrawPerTick)
	}
	for i := 0; i < 3; i++ {
		a.withdrawGone(time.Now().Add(2 * awayGrace))
	}
	if n := a.counter("clients_withdrawn"); n != 40 {
		t.Fatalf("%d withdrawn after four ticks, want 40", n)
	}
}

package clientpool

import (
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gluon-464xlat/gluon-464xlat/header"
	"github.com/gluon-464xlat/gluon-464xlat/siit"
)

var clatRange = netip.MustParsePrefix("fddd:1337:1337::/48")

func v6(i byte) [16]byte {
	a := netip.MustParseAddr("fddd:1337:1337:1::a82:0").As16()
	a[15] = i
	return a
}

func newTestPool(t *testing.T, prefix string, h Hooks) (*Pool, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "platd.clients")
	p, err := New(netip.MustParsePrefix(prefix), clatRange, path, h)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Load(nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, path
}

func TestPoolGivesEachClientItsOwnAddressUntilNoneIsLeft(t *testing.T) {
	full := 0
	var mapped [][4]byte
	p, _ := newTestPool(t, "198.18.0.0/29", Hooks{Full: func() { full++ },
		Mapped: func(v4 [4]byte, _ [16]byte) error { mapped = append(mapped, v4); return nil }})
	if p.Own() != netip.MustParseAddr("198.18.0.1") {
		t.Fatalf("own address %s, want 198.18.0.1", p.Own())
	}
	// a /29: .2 to .6 for clients (not .0, the own .1, nor .7)
	for i := byte(1); i <= 5; i++ {
		a, ok := p.To4(v6(i), true)
		if want := [4]byte{198, 18, 0, 1 + i}; !ok || a != want {
			t.Fatalf("client %d: %v %v, want %v", i, a, ok, want)
		}
		if again, _ := p.To4(v6(i), true); again != a {
			t.Fatalf("client %d asked again: %v, want %v", i, again, a)
		}
		back, mappedOK, own := p.To6(a)
		if !mappedOK || !own || back != v6(i) {
			t.Fatalf("%v back: %v %v %v", a, back, mappedOK, own)
		}
	}
	if len(mapped) != 5 {
		t.Fatalf("the fast path got %d mappings, want 5", len(mapped))
	}
	if _, ok := p.To4(v6(6), true); ok || full != 1 || p.Stats().Refused != 1 {
		t.Fatalf("pool used up: mapped %v, Full called %d times, refused %d; want none, 1, 1", ok, full, p.Stats().Refused)
	}
	if _, ok := p.To4(v6(7), false); ok {
		t.Fatal("a lookup without add mapped a client")
	}
	if _, ok := p.To4(netip.MustParseAddr("2001:db8::1").As16(), true); ok {
		t.Fatal("an address outside the clients' range was mapped")
	}
	if _, m, own := p.To6([4]byte{198, 18, 0, 7}); m || !own {
		t.Fatalf("198.18.0.7: mapped %v, own %v; want false, true (the pool's, nobody's)", m, own)
	}
	if _, _, own := p.To6([4]byte{198, 18, 1, 2}); own {
		t.Fatal("an address outside the pool is the pool's")
	}
}

func TestPoolReclaimsOnlyUnusedAddressesPastTheGrace(t *testing.T) {
	var unmapped [][4]byte
	p, path := newTestPool(t, "198.18.0.0/29", Hooks{Unmapped: func(v4 [4]byte, _ [16]byte) { unmapped = append(unmapped, v4) }})
	now := time.Unix(1000, 0)
	p.clock = func() time.Time { return now }
	a1, _ := p.To4(v6(1), true)
	a2, _ := p.To4(v6(2), true)
	now = now.Add(time.Minute)
	a3, _ := p.To4(v6(3), true) // just given out
	n, err := p.Reclaim(map[[4]byte]bool{a1: true}, 30*time.Second)
	if err != nil || n != 1 || len(unmapped) != 1 || unmapped[0] != a2 {
		t.Fatalf("reclaimed %d (%v, err %v), want 1: %v only", n, unmapped, err, a2)
	}
	if _, ok := p.To4(v6(2), false); ok {
		t.Fatal("the reclaimed client is still mapped")
	}
	for _, a := range [][4]byte{a1, a3} {
		if _, ok, _ := p.To6(a); !ok {
			t.Fatalf("%v lost its client", a)
		}
	}
	j, _ := os.ReadFile(path)
	if got, err := readJournal(path); err != nil || len(got) != 2 || got[a1] != v6(1) || got[a3] != v6(3) {
		t.Fatalf("journal after reclaim:\n%s", j)
	}
}

// A restarted platd finds its clients' sessions under the same addresses;
// an address in use that the journal does not name is held, not given out.
func TestPoolLoadKeepsTheMappingsOfRunningSessions(t *testing.T) {
	p, path := newTestPool(t, "198.18.0.0/24", Hooks{})
	a1, _ := p.To4(v6(1), true)
	a2, _ := p.To4(v6(2), true)
	p.Close()
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("198.18.0.9 fddd:1337") // a line cut short by a crash
	f.Close()

	var mapped int
	q, err := New(netip.MustParsePrefix("198.18.0.0/24"), clatRange, path, Hooks{Mapped: func([4]byte, [16]byte) error { mapped++; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	orphan := [4]byte{198, 18, 0, 50}
	kept, err := q.Load(map[[4]byte]bool{a1: true, orphan: true})
	if err != nil || kept != 1 || mapped != 1 {
		t.Fatalf("kept %d (fast path %d), err %v; want 1, 1", kept, mapped, err)
	}
	if got, ok := q.To4(v6(1), false); !ok || got != a1 {
		t.Fatalf("client 1 after the restart: %v %v, want %v", got, ok, a1)
	}
	if _, ok := q.To4(v6(2), false); ok {
		t.Fatalf("client 2 (no sessions, %v) kept", a2)
	}
	if _, m, _ := q.To6(orphan); m {
		t.Fatal("an orphan address has a client")
	}
	for i := byte(10); i < 60; i++ {
		if a, _ := q.To4(v6(i), true); a == orphan {
			t.Fatalf("the orphan address %v was given to a new client", orphan)
		}
	}
	if s := q.Stats(); s.Orphans != 1 || s.Clients != 51 {
		t.Fatalf("stats %+v, want 51 clients, 1 orphan", s)
	}
}

func TestPoolRefusesPrefixesOutsideItsBounds(t *testing.T) {
	for _, s := range []string{"198.18.0.0/15", "198.18.0.0/30", "fd00::/64"} {
		if _, err := New(netip.MustParsePrefix(s), clatRange, "", Hooks{}); err == nil {
			t.Errorf("%s taken", s)
		}
	}
}

// The pool is on every packet's path (siit.ClientMap): a mapped client's
// packets, both ways, allocate nothing.
func TestTranslatingThroughThePoolAllocatesNothing(t *testing.T) {
	p, _ := newTestPool(t, "198.18.0.0/16", Hooks{})
	plat, _ := siit.ParsePrefix6052("fddd:1337:1338:1234:5678:9abc::/96")
	tr, err := siit.New(siit.Config{Pool6: plat, Clients: p, Addr4: p.Own(), Pool6791: p.Own()})
	if err != nil {
		t.Fatal(err)
	}
	client := v6(1)
	server := netip.MustParseAddr("fddd:1337:1338:1234:5678:9abc:c633:6401").As16()
	up := make([]byte, 48) // IPv6 + UDP, no payload
	up[0], up[5], up[6], up[7] = 0x60, 8, header.ProtoUDP, 64
	copy(up[8:], client[:])
	copy(up[24:], server[:])
	binary.BigEndian.PutUint16(up[40:], 40000)
	binary.BigEndian.PutUint16(up[42:], 53)
	binary.BigEndian.PutUint16(up[44:], 8)
	binary.BigEndian.PutUint16(up[46:], header.Checksum(up[40:48], header.PseudoSum(up[8:24], up[24:40], header.ProtoUDP, 8)))
	down := make([]byte, 28) // IPv4 + UDP back to the client's address
	down[0], down[3], down[8], down[9] = 0x45, 28, 64, header.ProtoUDP
	copy(down[12:], []byte{198, 51, 100, 1})
	copy(down[16:], []byte{198, 18, 0, 2})
	header.IPv4(down).SetChecksum()
	binary.BigEndian.PutUint16(down[20:], 53)
	binary.BigEndian.PutUint16(down[22:], 40000)
	binary.BigEndian.PutUint16(down[24:], 8)
	binary.BigEndian.PutUint16(down[26:], header.Checksum(down[20:28], header.PseudoSum(down[12:16], down[16:20], header.ProtoUDP, 8)))
	for i, pkt := range [][]byte{up, down} {
		buf := make([]byte, siit.Headroom+len(pkt))
		var out siit.Batch
		translate := func() siit.Reason {
			copy(buf[siit.Headroom:], pkt)
			return tr.Translate(&siit.Packet{Buf: buf, Start: siit.Headroom, Len: len(pkt)}, &out)
		}
		if r := translate(); r != siit.OK {
			t.Fatalf("packet %d: %v", i, r)
		}
		if n := testing.AllocsPerRun(100, func() { translate() }); n != 0 {
			t.Errorf("packet %d: %.0f allocations per packet, want 0", i, n)
		}
	}
}

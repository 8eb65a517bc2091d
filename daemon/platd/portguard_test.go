package platd

import (
	"net/netip"
	"testing"

	"github.com/gluon-464xlat/gluon-464xlat/internal/ctdump"
)

// The guard's arithmetic; TestPLATPortRangeExhaustedCountedFromEvents (e2e)
// runs it against the kernel's events and NAT.
func TestPortGuardRefusesFromTheLimitAndAcceptsBelowResume(t *testing.T) {
	var calls []bool
	g := newPortGuard(1024, netip.MustParsePrefix("198.18.0.0/16"), func(_ destKey, full bool) error {
		calls = append(calls, full)
		return nil
	})
	if g.limit != 896 || g.resume != 864 {
		t.Fatalf("limit %d, resume %d; want 896, 864 (7/8 of 1024, 1/32 below)", g.limit, g.resume)
	}
	e := ctdump.Entry{Src: netip.MustParseAddr("198.18.0.2"), Dst: netip.MustParseAddr("198.51.100.1"), Proto: 17, DstPort: 53, Mark: sessionMark}
	for i := 0; i < 895; i++ {
		g.event(ctdump.New, e)
	}
	if len(calls) != 0 {
		t.Fatalf("refusing below the limit: %v", calls)
	}
	g.event(ctdump.New, e)
	if len(calls) != 1 || !calls[0] || g.fullNow() != 1 {
		t.Fatalf("at the limit: calls %v, full %d", calls, g.fullNow())
	}
	for i := 0; i < 32; i++ { // down to 864: still refused
		g.event(ctdump.Destroy, e)
	}
	if len(calls) != 1 {
		t.Fatalf("accepting again above resume: %v", calls)
	}
	g.event(ctdump.Destroy, e)
	if len(calls) != 2 || calls[1] || g.fullNow() != 0 {
		t.Fatalf("below resume: calls %v, full %d", calls, g.fullNow())
	}
	for i := 0; i < 900; i++ {
		g.event(ctdump.Destroy, e)
	}
	if len(g.counts) != 0 {
		t.Errorf("a destination without sessions is still kept: %v", g.counts)
	}
}

func TestPortGuardCountsOnlyPlatdsSessionsByDestination(t *testing.T) {
	g := newPortGuard(4536, netip.MustParsePrefix("198.18.0.0/16"), func(destKey, bool) error { return nil })
	nat, dst := netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.51.100.1")
	for _, e := range []ctdump.Entry{
		{Src: nat, Dst: dst, Proto: 17, SrcPort: 1, DstPort: 53, Mark: sessionMark},
		{Src: nat, Dst: dst, Proto: 17, SrcPort: 2, DstPort: 53, Mark: sessionMark | 5},
		{Src: nat, Dst: dst, Proto: 6, SrcPort: 3, DstPort: 53, Mark: sessionMark},
		{Src: nat, Dst: dst, Proto: 1, SrcPort: 4, DstPort: 0, Mark: sessionMark},
		{Src: nat, Dst: dst, Proto: 1, SrcPort: 5, DstPort: 0, Mark: sessionMark},
		{Src: nat, Dst: dst, Proto: 17, DstPort: 53},                                                // not marked: the router's own NAT
		{Src: netip.MustParseAddr("10.0.0.1"), Dst: dst, Proto: 17, DstPort: 53, Mark: sessionMark}, // not from the client pool
	} {
		g.event(ctdump.New, e)
	}
	want := map[destKey]int32{
		{Addr: dst.As4(), Proto: 17, Port: 53}: 2,
		{Addr: dst.As4(), Proto: 6, Port: 53}:  1,
		{Addr: dst.As4(), Proto: 1}:            2, // ICMP: by address alone, whatever the identifier
	}
	if len(g.counts) != len(want) {
		t.Fatalf("counts %v, want %v", g.counts, want)
	}
	for k, n := range want {
		if g.counts[k] != n {
			t.Errorf("%+v: %d, want %d", k, g.counts[k], n)
		}
	}
}

func TestGuardLimitLeavesTheNATRoomToFindAPort(t *testing.T) {
	for ports, want := range map[int]int{3: 3, 127: 127, 128: 112, 1024: 896, 4536: 3969} {
		if got := guardLimit(ports); got != want {
			t.Errorf("guardLimit(%d) = %d, want %d", ports, got, want)
		}
	}
}

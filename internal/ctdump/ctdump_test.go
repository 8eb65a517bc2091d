package ctdump

import (
	"net/netip"
	"os"
	"runtime"
	"testing"

	"github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"
)

// Against the kernel's conntrack in a network namespace of its own: 3000
// entries of both families, some with the mark bit; each filter streams
// exactly its share, and the whole table more than one read holds.
func TestEachSelectsInTheKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace")
	}
	const mark = 1 << 30
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // the thread dies with the namespace: no unlock
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			t.Errorf("unshare: %v", err)
			return
		}
		c, err := conntrack.Dial(nil)
		if err != nil {
			t.Errorf("dial: %v", err)
			return
		}
		defer c.Close()
		want := map[Filter]int{}
		for i := 0; i < 3000; i++ {
			fam, src, dst := uint8(unix.AF_INET), netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.1")
			if i%3 == 0 {
				fam, src, dst = unix.AF_INET6, netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
			}
			m := uint32(0)
			if i%2 == 0 {
				m = mark | 7 // other bits of the mark are someone else's
			}
			f := conntrack.NewFlow(17, 0, src, dst, uint16(1024+i), 53, 120, m)
			if err := c.Create(f); err != nil {
				t.Errorf("create: %v", err)
				return
			}
			want[Filter{}]++
			want[Filter{Family: fam}]++
			if m != 0 {
				want[Filter{Family: fam, Mark: mark, Mask: mark}]++
			} else {
				want[Filter{Family: fam, Mask: mark}]++
			}
		}
		for f, n := range want {
			got := 0
			if err := Each(f, func(conntrack.Flow) { got++ }); err != nil {
				t.Errorf("%+v: %v", f, err)
			}
			if got != n {
				t.Errorf("%+v: %d entries, want %d", f, got, n)
			}
		}
	}()
	<-done
}

package ctdump

import (
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/gluon-464xlat/gluon-464xlat/internal/netlab"
	"github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"
)

// Against the kernel's conntrack in a network namespace of its own: 3000
// entries of both families, some with the mark bit; each filter streams
// exactly its share, and the whole table more than one read holds.
func TestEachSelectsInTheKernel(t *testing.T) {
	const mark = 1 << 30
	netlab.InPrivateNetns(t, func() {
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
			got = 0
			if err := EachEntry(f, func(e Entry) {
				if e.Proto == 17 && e.DstPort == 53 && e.SrcPort >= 1024 && e.SrcPort < 4024 && e.Mark&f.Mask == f.Mark {
					got++
				}
			}); err != nil {
				t.Errorf("EachEntry %+v: %v", f, err)
			}
			if got != n {
				t.Errorf("EachEntry %+v: %d entries with their tuple and mark, want %d", f, got, n)
			}
		}
		// EachEntry allocates per read, not per entry (the port guard's
		// recount of a busy exit's table).
		if a := testing.AllocsPerRun(3, func() { EachEntry(Filter{}, func(Entry) {}) }); a > 300 {
			t.Errorf("EachEntry over 3000 entries: %.0f allocations, want at most 300", a)
		}
	})
}

// Against the kernel's conntrack in a network namespace of its own: Watch
// reports the new and destroyed entries of its family only, from the
// moment it says it has subscribed.
func TestWatchReportsNewAndDestroyedEntriesOfOneFamily(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace")
	}
	result := make(chan [3]int, 1)
	go func() {
		runtime.LockOSThread() // this thread and the watcher's die with the namespace: no unlock
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			t.Errorf("unshare: %v", err)
			close(result)
			return
		}
		ns, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Errorf("netns: %v", err)
			close(result)
			return
		}
		ready, stop, seen := make(chan struct{}), make(chan struct{}), make(chan struct{}, 1)
		go func() {
			runtime.LockOSThread()
			var n [3]int
			defer close(seen)
			if err := unix.Setns(ns, unix.CLONE_NEWNET); err != nil {
				t.Errorf("setns: %v", err)
				close(ready)
				result <- n
				return
			}
			err := Watch(unix.AF_INET, nil, stop, func() { close(ready) }, func() { t.Error("events lost") }, func(kind int, e Entry) {
				if e.Src == netip.MustParseAddr("192.0.2.1") && e.Dst == netip.MustParseAddr("198.51.100.1") &&
					e.Proto == 17 && e.DstPort == 53 && e.SrcPort >= 1024 && e.Mark == 7 {
					n[kind]++
				} else {
					n[0]++
				}
				if n[0]+n[1]+n[2] == 50 {
					seen <- struct{}{}
				}
			})
			if err != nil {
				t.Errorf("watch: %v", err)
			}
			result <- n
		}()
		<-ready
		unix.Close(ns)
		c, err := conntrack.Dial(nil)
		if err != nil {
			t.Errorf("dial: %v", err)
			close(stop)
			return
		}
		defer c.Close()
		var v4 []conntrack.Flow
		for i := 0; i < 60; i++ {
			src, dst := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.1")
			if i%3 == 0 {
				src, dst = netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
			}
			f := conntrack.NewFlow(17, 0, src, dst, uint16(1024+i), 53, 120, 7)
			if err := c.Create(f); err != nil {
				t.Errorf("create: %v", err)
			}
			if i%3 != 0 {
				v4 = append(v4, f)
			}
		}
		for _, f := range v4[:10] {
			if err := c.Delete(f); err != nil {
				t.Errorf("delete: %v", err)
			}
		}
		select { // the 50 events of its family, or the other's too
		case <-seen:
		case <-time.After(5 * time.Second):
		}
		close(stop)
	}()
	n := <-result
	if n != [3]int{0, 40, 10} {
		t.Errorf("events (other family, new, destroyed): %v, want [0 40 10]", n)
	}
}

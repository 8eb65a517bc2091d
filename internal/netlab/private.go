package netlab

import (
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// InPrivateNetns runs f on an OS thread of its own in a new network
// namespace and waits for it. The thread stays locked and ends with f's
// goroutine, so the namespace goes with it and nothing else of the test
// binary ever runs there. Threads f starts itself must enter the
// namespace on their own (/proc/thread-self/ns/net). Skips without root.
func InPrivateNetns(t testing.TB, f func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // no unlock: the thread dies with the namespace
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			t.Errorf("unshare: %v", err)
			return
		}
		f()
	}()
	<-done
}

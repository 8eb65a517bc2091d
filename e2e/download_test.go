package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gluon-464xlat/gluon-464xlat/internal/netlab"
)

// startDownload runs a TCP server in srv sending size pattern bytes at rate
// bytes/s on addr's port, and a client in cli fetching them from addr,
// checking every byte and logging each read to the returned progress file.
// It returns once the first bytes have arrived: a test that breaks something
// "mid-stream" must do so mid-stream also on a cold machine, where starting
// a helper can take longer than any fixed sleep (and a break during the
// handshake is, by TCP's design, a failed connect instead).
func startDownload(t *testing.T, l *netlab.Lab, srv, cli, name, addr string, size, rate int) (fetch *netlab.Proc, progress string) {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	l.StartServer(srv, "tcp-serve-"+name, netlab.Helper("tcp-serve", ":"+port, fmt.Sprint(size), fmt.Sprint(rate))...)
	progress = filepath.Join(l.Dir, "progress-"+name)
	fetch = l.Start(cli, "tcp-fetch-"+name, netlab.Helper("tcp-fetch", addr, fmt.Sprint(size), progress)...)
	if !netlab.WaitFor(15*time.Second, func() bool { st, err := os.Stat(progress); return err == nil && st.Size() > 0 }) {
		t.Fatalf("download %s: no bytes within 15 s: %s", name, fetch.Log())
	}
	return fetch, progress
}

// finished waits up to timeout for the download to end and reports whether
// it got all size bytes, byte-exact.
func finished(fetch *netlab.Proc, size int, timeout time.Duration) bool {
	netlab.WaitFor(timeout, fetch.Exited)
	return strings.Contains(fetch.Log(), fmt.Sprintf("ok %d bytes", size))
}

// received is what the download's progress file says it has received.
func received(progress string) int {
	b, _ := os.ReadFile(progress)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	f := strings.Fields(lines[len(lines)-1])
	if len(f) != 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// receivedMore waits until the download has received n more bytes than
// now: whatever the test does next happens mid-transfer, with traffic
// flowing, on a slow machine as on a fast one.
func receivedMore(t *testing.T, fetch *netlab.Proc, progress string, n int) {
	t.Helper()
	want := received(progress) + n
	if !netlab.WaitFor(30*time.Second, func() bool { return received(progress) >= want }) {
		t.Fatalf("download: %d of %d bytes after 30 s: %s", received(progress), want, fetch.Log())
	}
}

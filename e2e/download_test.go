package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
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
	serve := l.Start(srv, "tcp-serve-"+name, netlab.Helper("tcp-serve", ":"+port, fmt.Sprint(size), fmt.Sprint(rate))...)
	if !netlab.WaitFor(10*time.Second, func() bool { return strings.Contains(serve.Log(), "listening") }) {
		t.Fatalf("server %s did not start: %s", name, serve.Log())
	}
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

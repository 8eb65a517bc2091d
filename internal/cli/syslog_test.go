package cli

import (
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Each level goes to syslog at its priority, facility daemon (3): debug
// <31>, info <30>, warning <28>, err <27>; attributes, groups and the
// message as on stderr, without the time.
func TestSyslogPriorityFollowsTheLevel(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "log")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	w, err := dialSyslog(sock, "clatd")
	if err != nil {
		t.Fatal(err)
	}
	var lvl slog.LevelVar
	lvl.Set(slog.LevelDebug)
	log := slog.New(newSyslogHandler(w, &lvl)).With("dev", "clat")
	log.Debug("d")
	log.Info("running", "queues", 2)
	log.WithGroup("g").Warn("w", "k", "v")
	log.Error("e")
	want := []string{"<31>", "<30>", "<28>", "<27>"}
	buf := make([]byte, 2048)
	for i, p := range want {
		ln.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := ln.Read(buf)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		msg := string(buf[:n])
		if !strings.HasPrefix(msg, p) || !strings.Contains(msg, "clatd[") || !strings.Contains(msg, "dev=clat") || strings.Contains(msg, "time=") {
			t.Errorf("message %d: %q, want priority %s, the tag, the attributes and no time", i, msg, p)
		}
		if i == 1 && !strings.Contains(msg, "level=INFO msg=running dev=clat queues=2") {
			t.Errorf("info line %q", msg)
		}
		if i == 2 && !strings.Contains(msg, "g.k=v") {
			t.Errorf("group lost: %q", msg)
		}
	}
}

// A syslog daemon that stops reading (logd stuck or restarting) must not
// stop the daemon: lines that cannot go out in time are dropped, and the
// first line that goes out again says how many. log/syslog blocked here
// for as long as the reader did.
func TestSyslogThatStopsReadingDoesNotBlockLogging(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "log")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	w, err := dialSyslog(sock, "l3roamd")
	if err != nil {
		t.Fatal(err)
	}
	var lvl slog.LevelVar
	log := slog.New(newSyslogHandler(w, &lvl))
	done := make(chan struct{})
	go func() {
		// far more than a datagram socket's queue holds (max_dgram_qlen 512)
		for i := 0; i < 2000; i++ {
			log.Info("line", "i", i)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("logging blocked while syslog did not read")
	}
	if w.dropped == 0 {
		t.Fatal("no line dropped although nobody read")
	}
	// the reader comes back (and a second passes, after which the writer
	// tries again): the next line goes out after the count of the lost ones
	w.mu.Lock()
	w.stalled = time.Time{}
	w.mu.Unlock()
	buf := make([]byte, 2048)
	for {
		ln.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := ln.Read(buf); err != nil {
			break
		}
	}
	log.Info("back")
	ln.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, err := ln.Read(buf)
	if err != nil || !strings.Contains(string(buf[:n]), "dropped") || !strings.HasPrefix(string(buf[:n]), "<28>") {
		t.Fatalf("first line after the stall: %q, %v; want the count of dropped lines at warning", buf[:n], err)
	}
	ln.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err = ln.Read(buf); err != nil || !strings.Contains(string(buf[:n]), "msg=back") {
		t.Fatalf("the line itself: %q, %v", buf[:n], err)
	}
}

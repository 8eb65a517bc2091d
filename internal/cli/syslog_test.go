package cli

import (
	"log/slog"
	"log/syslog"
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
	w, err := syslog.Dial("unixgram", sock, syslog.LOG_DAEMON|syslog.LOG_INFO, "clatd")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
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

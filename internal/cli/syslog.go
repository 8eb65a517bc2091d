package cli

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

// syslogHandler sends each record to syslog at the priority of its level
// (facility daemon). Without it the daemons write to stderr, and procd
// files every stderr line as daemon.err: logread and a remote syslog (Gluon's
// gluon-logging) would see info as errors. The record is formatted as the
// stderr lines are, less the time (syslog adds its own).
type syslogHandler struct {
	slog.Handler // a TextHandler into buf
	w            *syslogWriter
	mu           *sync.Mutex
	buf          *bytes.Buffer
}

func newSyslogHandler(w *syslogWriter, level slog.Leveler) *syslogHandler {
	buf := &bytes.Buffer{}
	th := slog.NewTextHandler(buf, &slog.HandlerOptions{Level: level, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}})
	return &syslogHandler{Handler: th, w: w, mu: &sync.Mutex{}, buf: buf}
}

// Syslog severities (RFC 5424), facility daemon.
const (
	facilityDaemon = 3 << 3
	sevErr         = 3
	sevWarning     = 4
	sevInfo        = 6
	sevDebug       = 7
)

func (h *syslogHandler) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.buf.Reset()
	if err := h.Handler.Handle(ctx, r); err != nil {
		return err
	}
	msg := strings.TrimSuffix(h.buf.String(), "\n")
	sev := sevDebug
	switch {
	case r.Level >= slog.LevelError:
		sev = sevErr
	case r.Level >= slog.LevelWarn:
		sev = sevWarning
	case r.Level >= slog.LevelInfo:
		sev = sevInfo
	}
	return h.w.write(sev, msg)
}

func (h *syslogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &syslogHandler{Handler: h.Handler.WithAttrs(as), w: h.w, mu: h.mu, buf: h.buf}
}

func (h *syslogHandler) WithGroup(name string) slog.Handler {
	return &syslogHandler{Handler: h.Handler.WithGroup(name), w: h.w, mu: h.mu, buf: h.buf}
}

// syslogWriter sends lines to the local syslog socket as log/syslog does
// ("<PRI>Mmm dd hh:mm:ss tag[pid]: msg" on a unixgram socket), with one
// difference that is why it is written here: a write never waits longer
// than syslogWait. log/syslog's writes have no deadline, and a datagram
// socket blocks while the syslog daemon's queue is full; with logd stuck or
// restarting, every goroutine that logs would block with it, and a daemon
// that logs under a lock would stop working. A line that cannot go out in
// time is dropped, and so is every line for a second after it without a
// try (a stalled logd costs a daemon one wait a second, not one a line);
// the next line that goes out says how many were.
type syslogWriter struct {
	path, tag string
	pid       int
	mu        sync.Mutex
	conn      *net.UnixConn
	dropped   int
	stalled   time.Time // no try before this
}

const syslogWait = 50 * time.Millisecond

func dialSyslog(path, tag string) (*syslogWriter, error) {
	w := &syslogWriter{path: path, tag: tag, pid: os.Getpid()}
	return w, w.connect()
}

func (w *syslogWriter) connect() error {
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: w.path, Net: "unixgram"})
	if err != nil {
		return err
	}
	w.conn = c
	return nil
}

func (w *syslogWriter) send(sev int, msg string) error {
	if w.conn == nil {
		if err := w.connect(); err != nil {
			return err
		}
	}
	line := fmt.Sprintf("<%d>%s %s[%d]: %s\n", facilityDaemon|sev, time.Now().Format(time.Stamp), w.tag, w.pid, msg)
	w.conn.SetWriteDeadline(time.Now().Add(syslogWait))
	if _, err := w.conn.Write([]byte(line)); err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			w.stalled = time.Now().Add(time.Second)
		} else {
			w.conn.Close() // the syslog daemon restarted: connect again next time
			w.conn = nil
		}
		return err
	}
	return nil
}

func (w *syslogWriter) write(sev int, msg string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if time.Now().Before(w.stalled) {
		w.dropped++
		return nil
	}
	if w.dropped > 0 {
		if w.send(sevWarning, fmt.Sprintf("level=WARN msg=\"syslog did not take lines in time; dropped\" lines=%d", w.dropped)) != nil {
			w.dropped++
			return nil
		}
		w.dropped = 0
	}
	if err := w.send(sev, msg); err != nil {
		w.dropped++
	}
	return nil
}

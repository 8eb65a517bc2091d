package cli

import (
	"bytes"
	"context"
	"log/slog"
	"log/syslog"
	"strings"
	"sync"
)

// syslogHandler sends each record to syslog at the priority of its level
// (facility daemon). Without it the daemons write to stderr, and procd
// files every stderr line as daemon.err: logread and a remote syslog (Gluon's
// gluon-logging) would see info as errors. The record is formatted as the
// stderr lines are, less the time (syslog adds its own).
type syslogHandler struct {
	slog.Handler // a TextHandler into buf
	w            *syslog.Writer
	mu           *sync.Mutex
	buf          *bytes.Buffer
}

func newSyslogHandler(w *syslog.Writer, level slog.Leveler) *syslogHandler {
	buf := &bytes.Buffer{}
	th := slog.NewTextHandler(buf, &slog.HandlerOptions{Level: level, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}})
	return &syslogHandler{Handler: th, w: w, mu: &sync.Mutex{}, buf: buf}
}

func (h *syslogHandler) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.buf.Reset()
	if err := h.Handler.Handle(ctx, r); err != nil {
		return err
	}
	msg := strings.TrimSuffix(h.buf.String(), "\n")
	switch {
	case r.Level >= slog.LevelError:
		return h.w.Err(msg)
	case r.Level >= slog.LevelWarn:
		return h.w.Warning(msg)
	case r.Level >= slog.LevelInfo:
		return h.w.Info(msg)
	}
	return h.w.Debug(msg)
}

func (h *syslogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &syslogHandler{Handler: h.Handler.WithAttrs(as), w: h.w, mu: h.mu, buf: h.buf}
}

func (h *syslogHandler) WithGroup(name string) slog.Handler {
	return &syslogHandler{Handler: h.Handler.WithGroup(name), w: h.w, mu: h.mu, buf: h.buf}
}

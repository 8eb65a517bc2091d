package fastpath

import (
	"fmt"
	"log/slog"
)

// Mode is a daemon's -fastpath flag: auto runs the fast path where the
// kernel lets the daemon load and attach it and says why not otherwise;
// on fails the start instead; off leaves every packet to the TUN.
type Mode string

func (m *Mode) String() string { return string(*m) }

func (m *Mode) Set(s string) error {
	switch s {
	case "auto", "on", "off":
		*m = Mode(s)
		return nil
	}
	return fmt.Errorf("%q: want auto, on or off", s)
}

// Start loads the program with cfg and attaches it to the egress of the
// TUN ifindex, as mode says. unsupported, when not empty, is why the
// daemon's configuration is not one the program translates (every packet
// then takes the TUN; with on, the start fails). It returns nil and the
// reason when the fast path does not run.
func Start(mode Mode, ifindex int, cfg Config, unsupported string) (*Program, string, error) {
	if mode == "off" {
		return nil, "-fastpath off", nil
	}
	if unsupported != "" {
		if mode == "on" {
			return nil, "", fmt.Errorf("-fastpath on: %s", unsupported)
		}
		return nil, unsupported, nil
	}
	p, err := Load()
	if err == nil {
		if err = p.SetConfig(cfg); err == nil {
			err = p.Attach(ifindex)
		}
		if err != nil {
			p.Close()
		}
	}
	if err != nil {
		if mode == "on" {
			return nil, "", fmt.Errorf("fast path: %w", err)
		}
		slog.Warn("fast path not available: every packet takes the TUN", "err", err)
		return nil, "the kernel refused it: " + err.Error(), nil
	}
	return p, "", nil
}

// State is "on" for a running program, "off" for none (nil).
func (p *Program) State() string {
	if p == nil {
		return "off"
	}
	return "on"
}

package platd

import (
	"net/netip"
	"sync"
)

// natBackend is what platd needs from the kernel's firewall: the gate, the
// anti-spoof rule, the refusals, the untracked IPv6 and the IPv4 SNAT (see nft.go for
// the ruleset), all in platd's own table or chains, removed on exit.
type natBackend interface {
	// install (re)creates everything, replacing a crashed run's leftovers.
	install(c *config, wan netip.Addr) error
	// remove deletes everything platd added; sessions stay in conntrack.
	remove() error
	// counters returns the refusal counters by name (packets).
	counters() map[string]uint64
	// setFull switches the refusal of all new sessions on or off.
	setFull(on bool) error
	isFull() bool
	// setPortsFull refuses (or accepts again) new sessions to one
	// destination: the port guard's verdict (portguard.go), kept across
	// install. Only for a backend whose install made the guard's set.
	setPortsFull(k destKey, full bool) error
}

func (n *nftNAT) isFull() bool { return n.full.Load() }

func newBackend(c *config) (natBackend, error) {
	if c.backend == "iptables" {
		b, err := newIPTablesNAT(c)
		if err != nil {
			return nil, err
		}
		return &serialNAT{b: b}, nil
	}
	return &serialNAT{b: &nftNAT{}}, nil
}

// serialNAT runs a backend's operations one at a time: the WAN watcher
// reinstalls, the conntrack watcher gates, status reads counters and stop
// removes, each from its own goroutine; a backend keeps its kernel handles
// in plain fields.
type serialNAT struct {
	mu sync.Mutex
	b  natBackend
}

func (s *serialNAT) install(c *config, wan netip.Addr) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.install(c, wan)
}

func (s *serialNAT) remove() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.remove()
}

func (s *serialNAT) counters() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.counters()
}

func (s *serialNAT) setFull(on bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.setFull(on)
}

func (s *serialNAT) isFull() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.isFull()
}

func (s *serialNAT) setPortsFull(k destKey, full bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.setPortsFull(k, full)
}

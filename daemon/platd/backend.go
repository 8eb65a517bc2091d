package platd

import "net/netip"

// natBackend is what platd needs from the kernel's firewall: the gate, the
// anti-spoof rule, the refusals, NAT66 and the IPv4 SNAT (see nft.go for
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
}

func (n *nftNAT) isFull() bool { return n.full.Load() }

func newBackend(c *config) (natBackend, error) {
	if c.backend == "iptables" {
		return newIPTablesNAT(c)
	}
	return &nftNAT{}, nil
}

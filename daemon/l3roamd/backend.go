package l3roamd

import (
	"net/netip"
	"time"
)

// The kernel side of the roaming state has two backends: nft.go (an
// nftables table of its own) and xtables.go (iptables and ipsets, for
// firmware without nftables). The daemon tells either what must hold.

// firewall holds the roaming state in the kernel: nft.go, or xtables.go
// for firmware without nftables.
type firewall interface {
	// apply makes the kernel hold d
	apply(d *desired, now time.Time) error
	// read returns what a previous run left: the clients' 464xlat state and
	// the PLAT's roamed clients
	read(own netip.Prefix, now time.Time) (map[netip.Addr]xlatState, map[netip.Addr]roamed, error)
}

// desired is what the table must hold; apply writes it in one transaction.
type desired struct {
	own   netip.Prefix             // this node's CLAT /96 (may be invalid)
	plat  netip.Prefix             // the node's PLAT now (may be invalid)
	xlat  map[netip.Addr]xlatState // client IPv4 -> its 464xlat state
	roams map[netip.Addr]roamed    // PLAT: CLATD::ip -> where the client is now
}

// ttl is an entry's timeout from its expiry: whole seconds, at least one
// (the kernel refuses 0).
func ttl(exp, now time.Time) time.Duration {
	d := exp.Sub(now).Truncate(time.Second)
	if d < time.Second {
		d = time.Second
	}
	return d
}

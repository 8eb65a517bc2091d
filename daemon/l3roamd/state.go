package l3roamd

import (
	"net"
	"net/netip"
	"time"
)

// client is one client this node serves (or is claiming).
type client struct {
	mac net.HardwareAddr
	ip4 netip.Addr   // its IPv4, from the neighbour table or INFO_XLAT
	ip6 []netip.Addr // its IPv6 addresses inside the client prefixes
	// claiming: a CLAIM is out and no INFO came back yet
	claiming bool
	// lateClaim: served after maxRetries CLAIMs that had a route but no
	// answer; CLAIMs go on (claimLate) until an INFO comes or it leaves
	lateClaim bool
	// goneSince: the client bridge forgot its MAC (it went quiet for the
	// bridge's ageing time, or its port went); it is forgotten here after
	// goneGrace unless it shows up again
	goneSince time.Time
	// withdrawn: gone for awayGrace, its routes and node-client IP are
	// out of the kernel; the record stays for a late CLAIM until goneGrace
	withdrawn bool
}

// xlatState is where a client's IPv4 sessions live: the CLAT /96 of the
// node where it got its lease (CLATD) and the PLAT its sessions use
// (PLATC), until its lease ends.
type xlatState struct {
	clatd   netip.Prefix
	platc   netip.Prefix
	expires time.Time
}

// roamed is what a PLAT keeps of a client that roamed: its sessions are
// bound to from (CLATD::ip) and it is now at to (CLATB::ip).
type roamed struct {
	home, now netip.Addr
	expires   time.Time
}

// nodeClientIP is the C l3roamd's address for a client: the node-client
// /64 followed by the modified EUI-64 of its MAC (RFC 4291 appendix A).
func nodeClientIP(p netip.Prefix, mac net.HardwareAddr) netip.Addr {
	b := p.Masked().Addr().As16()
	b[8], b[9], b[10] = mac[0]^0x02, mac[1], mac[2]
	b[11], b[12] = 0xff, 0xfe
	b[13], b[14], b[15] = mac[3], mac[4], mac[5]
	return netip.AddrFrom16(b)
}

// macOfNodeClientIP inverts nodeClientIP (for addresses found in the
// kernel after a restart); ok is false for other addresses.
func macOfNodeClientIP(p netip.Prefix, a netip.Addr) (net.HardwareAddr, bool) {
	if !a.Is6() || !p.Contains(a) {
		return nil, false
	}
	b := a.As16()
	if b[11] != 0xff || b[12] != 0xfe {
		return nil, false
	}
	return net.HardwareAddr{b[8] ^ 0x02, b[9], b[10], b[13], b[14], b[15]}, true
}

// Package addrplan is the address plan the daemons share (DESIGN.md
// section 2), in one place: a node's /96 is its site's /48 range followed
// by the node's 48-bit primary MAC, and inside a /96 (RFC 6052 embedding
// of the RFC 7335 range):
//
//	PREFIX::192.0.0.1  a PLAT's management address (prefixd probes it, l3roamd takes ROAMs there)
//	PREFIX::192.0.0.2  a CLAT's own address (its ICMP errors, l3roamd's source towards a PLAT)
//
// and on an exit, between platd's stateless step and its SNAT, each client
// (CLAT address) has an IPv4 address of its own from PLATClientPool
// (198.18.0.0/16: RFC 2544's benchmarking space, which no network routes,
// and which stays inside the exit).
//
// The Lua library gluon.xlat (packages/gluon-464xlat-clat) computes the
// same for check_site and the upgrade scripts; a test holds the two to the
// same answers.
package addrplan

import (
	"fmt"
	"net"
	"net/netip"
)

// The RFC 7335 addresses the plan gives a meaning.
var (
	PLATMgmt4 = netip.AddrFrom4([4]byte{192, 0, 0, 1})
	CLATOwn4  = netip.AddrFrom4([4]byte{192, 0, 0, 2})
)

// PLATClientPool is platd's default -client-pool.
var PLATClientPool = netip.MustParsePrefix("198.18.0.0/16")

// In96 is the address of the /96 p that embeds v4 in its last 32 bits.
func In96(p netip.Prefix, v4 netip.Addr) netip.Addr {
	b := p.Masked().Addr().As16()
	a := v4.As4()
	copy(b[12:], a[:])
	return netip.AddrFrom16(b)
}

// PLATMgmt is PLAT::192.0.0.1.
func PLATMgmt(plat netip.Prefix) netip.Addr { return In96(plat, PLATMgmt4) }

// CLATOwn is CLAT::192.0.0.2.
func CLATOwn(clat netip.Prefix) netip.Addr { return In96(clat, CLATOwn4) }

// NodePrefix is the node's /96 in a site's /48 range: the range, then the
// MAC's six bytes, then 32 bits for IPv4.
func NodePrefix(range48 netip.Prefix, mac net.HardwareAddr) (netip.Prefix, error) {
	if !range48.Addr().Is6() || range48.Addr().Is4In6() || range48.Bits() != 48 || range48.Masked() != range48 {
		return netip.Prefix{}, fmt.Errorf("%s: want an IPv6 /48 with its host bits clear", range48)
	}
	if len(mac) != 6 {
		return netip.Prefix{}, fmt.Errorf("%s: want a 48-bit MAC", mac)
	}
	b := range48.Addr().As16()
	copy(b[6:12], mac)
	return netip.PrefixFrom(netip.AddrFrom16(b), 96), nil
}

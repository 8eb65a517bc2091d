// Package siit is a stateless IP/ICMP translator (SIIT, RFC 7915) working on
// packets in byte slices: no I/O, no allocation per packet. A CLAT (clatd)
// and the stateless step of a PLAT (platd) use it on top of a TUN device.
//
// The functions follow the RFC's structure: translate4to6 / translate6to4
// for the IP headers (sections 4.1 and 5.1), icmp4to6 / icmp6to4 for ICMP
// (4.2 and 5.2), translateInner* for the packet inside ICMP errors (4.3, 5.3),
// transport checksums (4.5, 5.5) and the fragment rules in frag.go.
package siit

import (
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/gluon-464xlat/gluon-464xlat/header"
)

// Config is the translator's address plan and policy. It is immutable once
// handed to a Translator; change it at run time with Translator.SetConfig.
type Config struct {
	// Pool6 is the RFC 6052 prefix used for addresses no EAM covers
	// (the PLAT prefix in a CLAT).
	Pool6 Prefix6052
	// EAMs are RFC 7757 explicit address mappings, checked before Pool6.
	// A CLAT maps its client IPv4 range onto its CLAT /96 this way.
	EAMs []EAM
	// Clients, when set, holds more EAMs of one IPv4 and one IPv6 address
	// each, made while translating (a PLAT's per-client mapping), checked
	// after EAMs and before Pool6.
	Clients ClientMap
	// Addr4 and Addr6 are the translator's own addresses, used as the source
	// of ICMP errors it originates itself (TTL expiry, source route failed).
	Addr4 netip.Addr
	Addr6 netip.Addr
	// Pool6791 is the IPv4 source used for translated ICMPv6 errors whose
	// IPv6 source has no IPv4 mapping (RFC 6791; RFC 7600's 192.0.0.8 by default).
	Pool6791 netip.Addr
	// LowestIPv6MTU: an IPv4 packet without DF whose translation is larger
	// than this is fragmented (RFC 7915 section 4, "lowest IPv6 MTU"); >= 1280.
	LowestIPv6MTU int
	// MTU6 and MTU4 are the next-hop MTUs after translation, for the MTU
	// arithmetic of sections 4.2 and 5.2 and to send PMTU errors; 0 = unknown.
	MTU6, MTU4 int
	// DropZeroUDPChecksum drops IPv4 UDP with a zero checksum instead of
	// computing one (RFC 7915 section 4.5 allows either; computing is default).
	DropZeroUDPChecksum bool
	// MaxMSS, when set, lowers the MSS option of TCP SYNs in both directions
	// to this value (the classic tunnel MSS clamp), so clients behind a
	// smaller IPv6 path MTU do not depend on ICMP getting through.
	MaxMSS int
	// Deny4 lists IPv4 destinations a PLAT must not reach for the mesh
	// (RFC 1918 and other special-purpose space): IPv6 packets towards them
	// are refused with ICMPv6 Destination Unreachable, administratively
	// prohibited (type 1 code 1), and counted. Checked 6->4 only.
	Deny4 []netip.Prefix
	// NoDecrementTTL skips the router-style TTL / hop limit decrement
	// (section 4.1 "Hop Limit", 5.1 "TTL"); the kernel already decrements
	// once when it forwards into the TUN, so this is for tests and special setups.
	NoDecrementTTL bool
}

// ClientMap is a table of RFC 7757 EAMs of single addresses that grows as
// clients appear: platd gives each CLAT address an IPv4 address of its own.
// Its methods are called per packet from every translating goroutine (with
// arrays, not slices: nothing escapes to the heap).
type ClientMap interface {
	// To4 is the IPv4 address mapped to the IPv6 address v6; with add, an
	// unmapped v6 gets one if any is left.
	To4(v6 [16]byte, add bool) (v4 [4]byte, mapped bool)
	// To6 is the IPv6 address mapped to v4 (mapped); own says v4 is the
	// map's to give (a client's address, or one not given yet:
	// untranslatable, not the pool's).
	To6(v4 [4]byte) (v6 [16]byte, mapped, own bool)
}

// Options for NewConfig; the zero values give RFC defaults.
const (
	DefaultPool6791 = "192.0.0.8" // RFC 7600 IPv4 dummy address
	DefaultAddr4    = "192.0.0.2" // RFC 7335 IPv4 service continuity prefix
)

// compiled is Config in the form the per-packet path reads.
type compiled struct {
	cfg      Config
	eams     []eamEntry
	addr4    [4]byte
	addr6    [16]byte
	pool6791 [4]byte
	fragMTU6 int // what 4->6 fragments fit: min(LowestIPv6MTU, MTU6)
	deny4    []mask4
}

// mask4 is an IPv4 prefix as address and mask, for a compare per entry.
type mask4 struct{ addr, mask uint32 }

func (k *compiled) denied4(a []byte) bool {
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	for _, m := range k.deny4 {
		if v&m.mask == m.addr {
			return true
		}
	}
	return false
}

func compile(c Config) (*compiled, error) {
	if !c.Pool6.Valid() && len(c.EAMs) == 0 && c.Clients == nil {
		return nil, fmt.Errorf("siit: need a pool6 prefix or at least one EAM")
	}
	if c.LowestIPv6MTU == 0 {
		c.LowestIPv6MTU = 1280
	}
	if c.LowestIPv6MTU < 1280 {
		return nil, fmt.Errorf("siit: lowest IPv6 MTU %d is below 1280 (RFC 8200 section 5)", c.LowestIPv6MTU)
	}
	if !c.Pool6791.IsValid() {
		c.Pool6791 = netip.MustParseAddr(DefaultPool6791)
	}
	if !c.Addr4.IsValid() {
		c.Addr4 = netip.MustParseAddr(DefaultAddr4)
	}
	if !c.Pool6791.Is4() || !c.Addr4.Is4() {
		return nil, fmt.Errorf("siit: pool6791 and addr4 must be IPv4 addresses")
	}
	if c.MTU4 != 0 && c.MTU4 < header.IPv4MinMTU {
		return nil, fmt.Errorf("siit: IPv4 next-hop MTU %d is below 68 (RFC 791)", c.MTU4)
	}
	if c.MTU6 != 0 && c.MTU6 < 1280 {
		return nil, fmt.Errorf("siit: IPv6 next-hop MTU %d is below 1280 (RFC 8200 section 5)", c.MTU6)
	}
	k := &compiled{cfg: c, addr4: c.Addr4.As4(), pool6791: c.Pool6791.As4()}
	k.fragMTU6 = c.LowestIPv6MTU
	if c.MTU6 > 0 {
		k.fragMTU6 = min(k.fragMTU6, c.MTU6)
	}
	if c.Addr6.IsValid() {
		k.addr6 = c.Addr6.As16()
	} else if c.Pool6.Valid() {
		// Without an own IPv6 address, errors come from the pool6 mapping of Addr4.
		c.Pool6.Embed(k.addr6[:], k.addr4[:])
	}
	for _, e := range c.EAMs {
		k.eams = append(k.eams, e.entry())
	}
	for _, p := range c.Deny4 {
		if !p.Addr().Is4() {
			return nil, fmt.Errorf("siit: deny4 %s is not an IPv4 prefix", p)
		}
		a := p.Masked().Addr().As4()
		m := uint32(0)
		if p.Bits() > 0 {
			m = ^uint32(0) << (32 - p.Bits())
		}
		k.deny4 = append(k.deny4, mask4{uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]), m})
	}
	return k, nil
}

// eam returns the index of the EAM whose IPv4 (or, with v6, IPv6) prefix
// holds a most specifically (RFC 7757 section 3.2: longest match), or -1.
func (k *compiled) eam(a []byte, v6 bool) int {
	best, bestBits := -1, -1
	for i := range k.eams {
		e := &k.eams[i]
		p, bits := e.v4[:], e.v4bits
		if v6 {
			p, bits = e.v6[:], e.v6bits
		}
		if bits > bestBits && prefixMatch(a, p, bits) {
			best, bestBits = i, bits
		}
	}
	return best
}

// map4to6 translates an IPv4 address: EAM first (RFC 7757 section 3.2),
// then the RFC 6052 pool. It reports false when neither applies. useEAM is
// false for the addresses RFC 7757 section 4.2 maps through the pool only
// (a hairpinned packet's source).
func (k *compiled) map4to6(dst, v4 []byte, useEAM bool) bool {
	if useEAM {
		if i := k.eam(v4, false); i >= 0 {
			k.eams[i].to6(dst[:16], v4[:4])
			return true
		}
		if k.cfg.Clients != nil {
			a, mapped, own := k.cfg.Clients.To6([4]byte(v4[:4]))
			if own {
				copy(dst[:16], a[:])
				return mapped
			}
		}
	}
	if !k.cfg.Pool6.Valid() || isSpecial4(v4) || k.cfg.Pool6.WellKnown() && isNonGlobal4(v4) {
		return false // RFC 6052 section 3.1: no non-global IPv4 behind 64:ff9b::/96
	}
	k.cfg.Pool6.Embed(dst, v4)
	return true
}

// map6to4 translates an IPv6 address: EAM first, then the client map (add:
// a new client gets an address: only for the source of a packet that may
// open a session), then the RFC 6052 pool.
func (k *compiled) map6to4(dst, v6 []byte, add bool) bool {
	if i := k.eam(v6, true); i >= 0 {
		k.eams[i].to4(dst[:4], v6[:16])
		return true
	}
	if k.cfg.Clients != nil {
		if a, ok := k.cfg.Clients.To4([16]byte(v6[:16]), add && !k.cfg.Pool6.Contains(v6)); ok {
			copy(dst[:4], a[:])
			return true
		}
	}
	if !k.cfg.Pool6.Valid() || !k.cfg.Pool6.Extract(dst, v6) {
		return false
	}
	return !isSpecial4(dst) && !(k.cfg.Pool6.WellKnown() && isNonGlobal4(dst))
}

// hairpins reports RFC 7757 section 4.2.2's condition for intrinsic
// hairpinning: an IPv6 address that the RFC 6052 pool (not an EAM) mapped to
// an IPv4 address that an EAM maps back into the IPv6 network.
func (k *compiled) hairpins(v6, v4 []byte) bool {
	return len(k.eams) > 0 && k.eam(v6, true) < 0 && k.eam(v4, false) >= 0
}

// Translator translates packets with one Config. Use one Translator per
// goroutine (it owns scratch buffers and counters); they may share a Config
// source through SetConfig.
type Translator struct {
	cfg     atomic.Pointer[compiled]
	Stats   Stats
	scratch []byte // ICMP errors and fragments are built here
	ipID    uint32 // Identification for IPv4 packets made from unfragmented IPv6
	// the bucket of allowError
	errTokens float64
	errRefill time.Time
}

// New returns a Translator for c.
func New(c Config) (*Translator, error) {
	k, err := compile(c)
	if err != nil {
		return nil, err
	}
	t := &Translator{scratch: make([]byte, scratchSize), errTokens: errorBurst, errRefill: time.Now()}
	t.cfg.Store(k)
	return t, nil
}

// SetConfig switches to c atomically: a packet is translated entirely with
// either the old or the new config, none is dropped for the switch.
func (t *Translator) SetConfig(c Config) error {
	k, err := compile(c)
	if err != nil {
		return err
	}
	t.cfg.Store(k)
	return nil
}

// Config returns the current configuration.
func (t *Translator) Config() Config { return t.cfg.Load().cfg }

// Package clientpool gives each client of a NAT64 (each CLAT address of the
// mesh) an IPv4 address of its own from a pool, made when the client's first
// packet arrives: RFC 7757 explicit address mappings of one address each.
// platd's stateless step translates with them (Pool is a siit.ClientMap, and
// its fast path's maps follow the pool), so a session's IPv6 side needs no
// conntrack entry: the IPv4 one, which the SNAT to the uplink makes anyway,
// is its only one.
//
// An address is given back only when conntrack holds no session of it
// (Reclaim, from platd's dump of the table), and the mappings are kept in a
// journal file (on tmpfs, like conntrack itself) so that a restarted platd
// finds its clients' running sessions under the same addresses.
package clientpool

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Hooks tell the owner what the pool does; each may be nil.
type Hooks struct {
	// Mapped and Unmapped follow every mapping made and removed (platd's
	// fast path maps). Mapped failing undoes the mapping.
	Mapped   func(v4 [4]byte, v6 [16]byte) error
	Unmapped func(v4 [4]byte, v6 [16]byte)
	// Full is called (without the pool's lock) when a new client found no
	// address left: platd then reclaims the unused ones.
	Full func()
}

// client is one mapping; orphan: an address conntrack has sessions of
// whose client is unknown (a lost journal): held until they end.
type client struct {
	v6     [16]byte
	since  time.Time
	orphan bool
}

// Pool is the table of mappings. Lookups take a read lock: every TUN queue
// translates with it at once.
type Pool struct {
	prefix netip.Prefix
	serves netip.Prefix // the IPv6 addresses that may get one
	base   uint32       // the prefix's first address
	size   uint32       // addresses in the prefix
	hooks  Hooks
	path   string // the journal, "" for none
	mu     sync.RWMutex
	by6    map[[16]byte]uint32 // client address -> offset in the pool
	by4    map[uint32]client
	next   uint32   // where the search for a free offset starts
	file   *os.File // the journal, appended to
	clock  func() time.Time

	refused atomic.Uint64 // new clients without an address
}

// MinBits and MaxBits bound the pool's prefix length: at most the fast
// path's map size (65 536), at least two clients.
const (
	MinBits = 16
	MaxBits = 29
)

// New makes an empty pool of the IPv4 prefix p for the clients inside the
// IPv6 prefix serves (clat_range), with its journal at path ("" for none).
// Load reads what an earlier run left.
func New(p, serves netip.Prefix, path string, h Hooks) (*Pool, error) {
	if err := CheckPrefix(p); err != nil {
		return nil, fmt.Errorf("client pool %s: %w", p, err)
	}
	if !serves.Addr().Is6() {
		return nil, fmt.Errorf("client pool: %s is not an IPv6 prefix", serves)
	}
	p = p.Masked()
	a := p.Addr().As4()
	return &Pool{prefix: p, serves: serves.Masked(), base: be32(a), size: 1 << (32 - p.Bits()), hooks: h, path: path,
		by6: map[[16]byte]uint32{}, by4: map[uint32]client{}, next: 2, clock: time.Now}, nil
}

func be32(a [4]byte) uint32 {
	return uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
}

func (p *Pool) addr(off uint32) [4]byte {
	v := p.base + off
	return [4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
}

// offset is v4's place in the pool, ok if it is a client's place: the
// first two (the network address and Own) and the last are nobody's.
func (p *Pool) offset(v4 [4]byte) (uint32, bool) {
	off := be32(v4) - p.base
	return off, off >= 2 && off < p.size-1
}

// Prefix is the pool's IPv4 prefix.
func (p *Pool) Prefix() netip.Prefix { return p.prefix }

// Own is the pool's address that no client gets: the translator's own (the
// source of its ICMP errors), NATed to the uplink like the clients'.
func (p *Pool) Own() netip.Addr { return OwnOf(p.prefix) }

// OwnOf is Own of a pool of the prefix p: its first address but one.
func OwnOf(p netip.Prefix) netip.Addr { return p.Masked().Addr().Next() }

// CheckPrefix says why p cannot be a pool.
func CheckPrefix(p netip.Prefix) error {
	if !p.Addr().Is4() || p.Bits() < MinBits || p.Bits() > MaxBits {
		return fmt.Errorf("need an IPv4 prefix from /%d to /%d", MinBits, MaxBits)
	}
	return nil
}

// To4 is siit.ClientMap's: v6's address; with add, a new client gets one.
func (p *Pool) To4(v6 [16]byte, add bool) ([4]byte, bool) {
	p.mu.RLock()
	off, ok := p.by6[v6]
	p.mu.RUnlock()
	if ok {
		return p.addr(off), true
	}
	if !add || !p.serves.Contains(netip.AddrFrom16(v6)) {
		return [4]byte{}, false
	}
	return p.add(v6)
}

// To6 is siit.ClientMap's: the client of a pool address.
func (p *Pool) To6(v4 [4]byte) ([16]byte, bool, bool) {
	off := be32(v4) - p.base
	if off >= p.size {
		return [16]byte{}, false, false
	}
	p.mu.RLock()
	c, ok := p.by4[off]
	p.mu.RUnlock()
	return c.v6, ok && !c.orphan, true
}

// add maps a new client to the next free address.
func (p *Pool) add(v6 [16]byte) ([4]byte, bool) {
	p.mu.Lock()
	if off, ok := p.by6[v6]; ok { // another queue was first
		p.mu.Unlock()
		return p.addr(off), true
	}
	clients := p.size - 3
	for i := uint32(0); i < clients; i++ {
		off := 2 + (p.next-2+i)%clients
		if _, used := p.by4[off]; used {
			continue
		}
		v4 := p.addr(off)
		if p.hooks.Mapped != nil {
			if err := p.hooks.Mapped(v4, v6); err != nil {
				p.mu.Unlock()
				slog.Error("client pool: the fast path does not take a client", "err", err)
				return [4]byte{}, false
			}
		}
		p.by6[v6], p.by4[off] = off, client{v6: v6, since: p.clock()}
		p.next = off + 1
		p.appendJournal(v4, v6)
		p.mu.Unlock()
		return v4, true
	}
	p.mu.Unlock()
	p.refused.Add(1)
	if p.hooks.Full != nil {
		p.hooks.Full()
	}
	return [4]byte{}, false
}

// Lookup is the client of a pool address, if it has one.
func (p *Pool) Lookup(v4 netip.Addr) (netip.Addr, bool) {
	if !v4.Is4() {
		return netip.Addr{}, false
	}
	v6, ok, _ := p.To6(v4.As4())
	return netip.AddrFrom16(v6), ok
}

// Address is the pool address of a client, if it has one.
func (p *Pool) Address(v6 netip.Addr) (netip.Addr, bool) {
	v4, ok := p.To4(v6.As16(), false)
	return netip.AddrFrom4(v4), ok && v6.Is6()
}

// Stats is what status shows of the pool.
type Stats struct {
	Clients int    // mapped
	Orphans int    // held for sessions of a client unknown since a restart
	Free    int    // addresses left
	Refused uint64 // new clients that found none
}

func (p *Pool) Stats() Stats {
	p.mu.RLock()
	defer p.mu.RUnlock()
	s := Stats{Clients: len(p.by6), Orphans: len(p.by4) - len(p.by6), Refused: p.refused.Load()}
	s.Free = int(p.size-3) - len(p.by4)
	return s
}

// Load reads the journal an earlier run left and keeps the mappings whose
// addresses conntrack still has sessions of (inUse); an address in use
// that the journal does not name is held as an orphan until its sessions
// end. The journal is written anew. It returns how many it kept.
func (p *Pool) Load(inUse map[[4]byte]bool) (int, error) {
	read := map[[4]byte][16]byte{}
	var err error
	if p.path != "" {
		read, err = readJournal(p.path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			slog.Warn("client pool: the journal is unreadable; its clients' sessions are held until they end", "path", p.path, "err", err)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.clock()
	kept := 0
	for v4 := range inUse {
		off, ok := p.offset(v4)
		if !ok {
			continue
		}
		v6, known := read[v4]
		if _, dup := p.by6[v6]; known && !dup && p.serves.Contains(netip.AddrFrom16(v6)) {
			if p.hooks.Mapped == nil || p.hooks.Mapped(v4, v6) == nil {
				p.by6[v6], p.by4[off] = off, client{v6: v6, since: now}
				kept++
				continue
			}
		}
		p.by4[off] = client{orphan: true, since: now}
	}
	return kept, p.rewriteJournal()
}

// Reclaim gives back the addresses conntrack has no session of (inUse),
// unless they were given out less than grace ago (a session's first
// packet may still be on its way to conntrack). It returns how many.
func (p *Pool) Reclaim(inUse map[[4]byte]bool, grace time.Duration) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now, n := p.clock(), 0
	for off, c := range p.by4 {
		v4 := p.addr(off)
		if inUse[v4] || now.Sub(c.since) < grace {
			continue
		}
		if !c.orphan {
			if p.hooks.Unmapped != nil {
				p.hooks.Unmapped(v4, c.v6)
			}
			delete(p.by6, c.v6)
		}
		delete(p.by4, off)
		n++
	}
	if n == 0 {
		return 0, nil
	}
	return n, p.rewriteJournal()
}

// Each calls fn with every client and its address.
func (p *Pool) Each(fn func(v4, v6 netip.Addr)) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	for off, c := range p.by4 {
		if !c.orphan {
			fn(netip.AddrFrom4(p.addr(off)), netip.AddrFrom16(c.v6))
		}
	}
}

// Close closes the journal (which stays for the next run). A nil pool has
// nothing to close.
func (p *Pool) Close() error {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.file == nil {
		return nil
	}
	err := p.file.Close()
	p.file = nil
	return err
}

// The journal is a line "IPV4 IPV6" per mapping made; a rewrite (at Load
// and Reclaim) leaves only the live ones. A line cut short by a crash is
// skipped on reading.
func (p *Pool) appendJournal(v4 [4]byte, v6 [16]byte) {
	if p.file == nil {
		return
	}
	if _, err := fmt.Fprintf(p.file, "%s %s\n", netip.AddrFrom4(v4), netip.AddrFrom16(v6)); err != nil {
		slog.Error("client pool: writing the journal", "path", p.path, "err", err)
	}
}

func (p *Pool) rewriteJournal() error {
	if p.path == "" {
		return nil
	}
	if p.file != nil {
		p.file.Close()
		p.file = nil
	}
	var b strings.Builder
	for off, c := range p.by4 {
		if !c.orphan {
			fmt.Fprintf(&b, "%s %s\n", netip.AddrFrom4(p.addr(off)), netip.AddrFrom16(c.v6))
		}
	}
	tmp := p.path + ".new"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("client pool journal: %w", err)
	}
	if err := os.Rename(tmp, p.path); err != nil {
		return fmt.Errorf("client pool journal: %w", err)
	}
	f, err := os.OpenFile(p.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("client pool journal: %w", err)
	}
	p.file = f
	return nil
}

func readJournal(path string) (map[[4]byte][16]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return map[[4]byte][16]byte{}, err
	}
	defer f.Close()
	res := map[[4]byte][16]byte{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		a, b, ok := strings.Cut(sc.Text(), " ")
		v4, err4 := netip.ParseAddr(a)
		v6, err6 := netip.ParseAddr(b)
		if !ok || err4 != nil || err6 != nil || !v4.Is4() || !v6.Is6() || v6.Is4In6() {
			continue
		}
		res[v4.As4()] = v6.As16() // a later line wins
	}
	return res, sc.Err()
}

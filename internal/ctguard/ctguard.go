// Package ctguard counts platd's NATed sessions per destination in the
// kernel: bpf/ctguard.c, a socket filter on the netlink socket that
// conntrack's events come to, keeps the counts in a BPF hash map and lets
// through only the events at which a destination reaches the limit or,
// refused, falls below the resume mark. platd's port guard reads those
// few and keeps its nftables set ports_full; it no longer reads, parses
// and counts an event per session start and end (bench-plat: that was
// most of what a session cost platd beyond the kernel's own forwarding).
package ctguard

import (
	_ "embed"
	"encoding/binary"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/gluon-464xlat/gluon-464xlat/internal/bpfload"
)

//go:embed ctguard_bpfel.o
var objLE []byte

//go:embed ctguard_bpfeb.o
var objBE []byte

// The maps of bpf/ctguard.c, made here with these sizes.
const (
	cfgSize  = 16
	destSize = 8
	// DestsMax is how many destinations with sessions are counted at
	// most (allocated as used): more than conntrack holds entries on a
	// router. A destination beyond it is not counted (Stats: MapFull).
	DestsMax = 65536
	fullMax  = 4096 // destinations refused at once
	numStats = 2
)

// Dest is what one WAN port serves once at a time: a destination address,
// protocol and port (ICMP: 0).
type Dest struct {
	Addr  [4]byte
	Proto uint8
	Port  uint16
}

// key is d as the map stores it: bpf/ctguard.c's struct dest.
func (d Dest) key() []byte {
	return []byte{d.Addr[0], d.Addr[1], d.Addr[2], d.Addr[3], d.Proto, 0, byte(d.Port >> 8), byte(d.Port)}
}

func destOf(k []byte) Dest {
	return Dest{Addr: [4]byte(k[:4]), Proto: k[4], Port: binary.BigEndian.Uint16(k[6:])}
}

// Counter is the loaded filter with its maps.
type Counter struct {
	prog, cfg, counts, full, stats int
	ncpu                           int
}

// Load makes the maps and loads the filter: sessions from the client pool
// that the SNAT gave another address count; limit is where a destination
// is reported full, resume where it is reported free again.
func Load(pool netip.Prefix, limit, resume int32) (*Counter, error) {
	c := &Counter{prog: -1, cfg: -1, counts: -1, full: -1, stats: -1, ncpu: bpfload.PossibleCPUs()}
	if err := bpfload.MapsCreate(
		bpfload.MapSpec{FD: &c.cfg, Type: unix.BPF_MAP_TYPE_ARRAY, Key: 4, Value: cfgSize, Max: 1},
		bpfload.MapSpec{FD: &c.counts, Type: unix.BPF_MAP_TYPE_HASH, Key: destSize, Value: 4, Max: DestsMax, Flags: unix.BPF_F_NO_PREALLOC},
		bpfload.MapSpec{FD: &c.full, Type: unix.BPF_MAP_TYPE_HASH, Key: destSize, Value: 1, Max: fullMax, Flags: unix.BPF_F_NO_PREALLOC},
		bpfload.MapSpec{FD: &c.stats, Type: unix.BPF_MAP_TYPE_PERCPU_ARRAY, Key: 4, Value: 8, Max: numStats},
	); err != nil {
		c.Close()
		return nil, err
	}
	cfg := make([]byte, cfgSize)
	net := pool.Masked().Addr().As4()
	copy(cfg, net[:])
	binary.BigEndian.PutUint32(cfg[4:], ^uint32(0)<<(32-pool.Bits()))
	bpfload.Order.PutUint32(cfg[8:], uint32(limit))
	bpfload.Order.PutUint32(cfg[12:], uint32(resume))
	if err := bpfload.MapElem(unix.BPF_MAP_UPDATE_ELEM, c.cfg, make([]byte, 4), cfg); err != nil {
		c.Close()
		return nil, fmt.Errorf("BPF map: %w", err)
	}
	obj := objLE
	if bpfload.Order == binary.BigEndian {
		obj = objBE
	}
	fds := map[string]int{"guard_cfg": c.cfg, "guard_counts": c.counts, "guard_full": c.full, "guard_stats": c.stats}
	insns, err := bpfload.Relocate(obj, bpfload.Order, "socket", fds)
	if err == nil {
		c.prog, err = bpfload.Load(unix.BPF_PROG_TYPE_SOCKET_FILTER, "port_guard", insns)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Attach makes the filter the one of socket fd (a netlink socket of
// conntrack's events).
func (c *Counter) Attach(fd int) error {
	return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ATTACH_BPF, c.prog)
}

// Count is d's sessions now.
func (c *Counter) Count(d Dest) int32 {
	v := make([]byte, 4)
	if bpfload.MapElem(unix.BPF_MAP_LOOKUP_ELEM, c.counts, d.key(), v) != nil {
		return 0
	}
	return int32(bpfload.Order.Uint32(v))
}

// Reset replaces the counts with n (a recount from a dump of the table).
func (c *Counter) Reset(n map[Dest]int32) {
	for _, k := range bpfload.MapKeys(c.counts, destSize) {
		if _, ok := n[destOf(k)]; !ok {
			bpfload.MapElem(unix.BPF_MAP_DELETE_ELEM, c.counts, k, nil)
		}
	}
	v := make([]byte, 4)
	for d, x := range n {
		bpfload.Order.PutUint32(v, uint32(x))
		bpfload.MapElem(unix.BPF_MAP_UPDATE_ELEM, c.counts, d.key(), v)
	}
}

// SetFull tells the filter that platd refuses d (full) or no longer does:
// it reports d next when that changes.
func (c *Counter) SetFull(d Dest, full bool) error {
	if full {
		return bpfload.MapElem(unix.BPF_MAP_UPDATE_ELEM, c.full, d.key(), []byte{1})
	}
	err := bpfload.MapElem(unix.BPF_MAP_DELETE_ELEM, c.full, d.key(), nil)
	if err == unix.ENOENT {
		return nil
	}
	return err
}

// Stats are the events the filter could not count: laid out unlike the
// kernel's (let through to platd, so never expected), and new
// destinations beyond DestsMax.
func (c *Counter) Stats() (unparsed, mapFull uint64) {
	unparsed, _ = bpfload.PerCPUSum(c.stats, c.ncpu, 0)
	mapFull, _ = bpfload.PerCPUSum(c.stats, c.ncpu, 1)
	return unparsed, mapFull
}

// Close frees the filter and its maps (a socket it is attached to keeps
// the program until it closes).
func (c *Counter) Close() {
	if c == nil {
		return
	}
	for _, fd := range []*int{&c.prog, &c.cfg, &c.counts, &c.full, &c.stats} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
}

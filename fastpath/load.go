// Package fastpath is the kernel fast path of clatd and of platd's
// stateless step: a tc classifier at the egress of the daemon's TUN
// (bpf/clat.c; PLAT mode for platd) that translates the common packets and
// hands them to the device's ingress or, for clatd's UDP and ICMP echo,
// straight to the device the kernel routes them out of; and the loader
// that puts it there.
//
// The loader is written by hand over the bpf(2) system call (bpfload) and
// vishvananda/netlink's tc support (already in every daemon) rather than
// with cilium/ebpf: the program needs a few maps, one relocation kind and
// one attach point, and a node's flash pays for every kilobyte (the
// measured difference is in docs/performance.md).
package fastpath

import (
	_ "embed"
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"

	"github.com/gluon-464xlat/gluon-464xlat/internal/bpfload"

	"golang.org/x/sys/unix"
)

//go:embed clat_bpfel.o
var objLE []byte

//go:embed clat_bpfeb.o
var objBE []byte

// The maps of bpf/clat.c, made here with the same sizes.
const (
	cfgSize     = 52    // struct cfg
	DenyMax     = 64    // Config.Deny at most: clat_deny's max_entries
	RoamedMax   = 1024  // SetRoamed's clients at most: clat_roamed's max_entries
	ClientsMax  = 65536 // MapClient's clients at most: plat_client4's and plat_client6's max_entries
	numCounters = 13    // C_NUM
)

// Counter names, in the order of bpf/clat.c's enum.
var counterNames = [numCounters]string{
	"fast_4to6", "fast_6to4", "to_tun_gso", "to_tun_header", "to_tun_address",
	"to_tun_protocol", "to_tun_syn", "to_tun_checksum", "to_tun_size", "to_tun_hop_limit",
	"direct_4to6", "direct_6to4", "to_tun_client",
}

// Program is the loaded classifier with its maps.
type Program struct {
	fd      int
	cfgFD   int
	countFD int
	denyFD  int
	roamFD  int
	cl4FD   int // plat_client4
	cl6FD   int // plat_client6
	ncpu    int

	mu       sync.Mutex // SetConfig and SetRoamed: the element is made of both
	cfg      Config
	roamed   map[netip.Addr]bool // what clat_roamed holds
	tooMany  bool                // SetRoamed was given more: nothing goes direct
	order    binary.ByteOrder
	attached int // ifindex, 0 if not attached
	early    int // the clients' device's ifindex, 0 if not attached there
}

// Load creates the maps and loads the program for this machine's byte
// order. The error says why the kernel refused (its verifier log).
func Load() (*Program, error) {
	p := &Program{fd: -1, cfgFD: -1, countFD: -1, denyFD: -1, roamFD: -1, cl4FD: -1, cl6FD: -1, order: bpfload.Order, ncpu: bpfload.PossibleCPUs()}
	obj := objLE
	if p.order == binary.BigEndian {
		obj = objBE
	}
	// bpf/clat.c's maps, with its sizes
	if err := bpfload.MapsCreate(
		bpfload.MapSpec{FD: &p.cfgFD, Type: unix.BPF_MAP_TYPE_HASH, Key: 4, Value: cfgSize, Max: 1},
		bpfload.MapSpec{FD: &p.countFD, Type: unix.BPF_MAP_TYPE_PERCPU_ARRAY, Key: 4, Value: 8, Max: numCounters},
		bpfload.MapSpec{FD: &p.denyFD, Type: unix.BPF_MAP_TYPE_LPM_TRIE, Key: 8, Value: 1, Max: DenyMax, Flags: unix.BPF_F_NO_PREALLOC},
		bpfload.MapSpec{FD: &p.roamFD, Type: unix.BPF_MAP_TYPE_HASH, Key: 4, Value: 1, Max: RoamedMax, Flags: unix.BPF_F_NO_PREALLOC},
		bpfload.MapSpec{FD: &p.cl4FD, Type: unix.BPF_MAP_TYPE_HASH, Key: 4, Value: 16, Max: ClientsMax, Flags: unix.BPF_F_NO_PREALLOC},
		bpfload.MapSpec{FD: &p.cl6FD, Type: unix.BPF_MAP_TYPE_HASH, Key: 16, Value: 4, Max: ClientsMax, Flags: unix.BPF_F_NO_PREALLOC},
	); err != nil {
		p.Close()
		return nil, err
	}
	p.roamed = map[netip.Addr]bool{}
	insns, err := p.relocate(obj)
	if err != nil {
		p.Close()
		return nil, err
	}
	if p.fd, err = bpfload.Load(unix.BPF_PROG_TYPE_SCHED_CLS, filterName, insns); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// relocate returns the program's instructions with its map references
// pointing at p's maps.
func (p *Program) relocate(obj []byte) ([]byte, error) {
	fds := map[string]int{"clat_cfg": p.cfgFD, "clat_counters": p.countFD, "clat_deny": p.denyFD,
		"clat_roamed": p.roamFD, "plat_client4": p.cl4FD, "plat_client6": p.cl6FD}
	return bpfload.Relocate(obj, p.order, "tc", fds)
}

// Config is what the program translates with.
type Config struct {
	CLAT      netip.Prefix // the node's CLAT /96
	PLAT      netip.Prefix // the PLAT /96; not valid: every packet to the TUN
	ClientNet netip.Prefix // the clients' IPv4 network (its EAM onto CLAT)
	MTU6      int          // a 4->6 packet with DF: at most this
	Frag6     int          // without DF: at most this
	MTU4      int          // a 6->4 packet: at most this
	L3Offset  int          // 0 on the TUN; 14 in a test run (an Ethernet header first)
	// PLATMode is platd's stateless step: PLAT is the PLAT /96, ClientNet
	// the client pool, whose addresses MapClient gives to clients' IPv6
	// addresses; what goes to an IPv4 destination in Deny is left to the
	// TUN (which refuses it). Deny is set once: SetConfig adds, never
	// removes.
	PLATMode bool
	Deny     []netip.Prefix
	// Direct sends translated UDP and ICMP echo out of the device the
	// kernel's FIB names (bpf_redirect_neigh) instead of through the
	// stack's second pass; see bpf/clat.c. Not with PLATMode (platd's
	// NAT66 and SNAT are netfilter's).
	Direct bool
	// TUNIndex and EarlyIndex: the TUN's and the clients' device's
	// ifindex, for the program at the latter's ingress (AttachEarly; 0:
	// not there). Not with PLATMode.
	TUNIndex, EarlyIndex int
}

// encode is Config as bpf/clat.c's struct cfg.
func (p *Program) encode(c Config) []byte {
	b := make([]byte, cfgSize)
	clat := c.CLAT.Addr().As16()
	copy(b[0:], clat[:12])
	if c.PLAT.IsValid() {
		plat := c.PLAT.Addr().As16()
		copy(b[12:], plat[:12])
		b[38] = 1
	}
	net4 := c.ClientNet.Masked().Addr().As4()
	copy(b[24:], net4[:])
	binary.BigEndian.PutUint32(b[28:], ^uint32(0)<<(32-c.ClientNet.Bits()))
	p.order.PutUint16(b[32:], uint16(c.MTU6))
	p.order.PutUint16(b[34:], uint16(c.Frag6))
	p.order.PutUint16(b[36:], uint16(c.MTU4))
	b[39] = byte(c.L3Offset)
	if c.PLATMode {
		b[40] = 1
	}
	if c.Direct && !c.PLATMode && !p.tooMany {
		b[41] = 1
	}
	if len(p.roamed) > 0 {
		b[42] = 1
	}
	if !c.PLATMode {
		p.order.PutUint32(b[44:], uint32(c.TUNIndex))
		p.order.PutUint32(b[48:], uint32(c.EarlyIndex))
	}
	return b
}

// SetConfig replaces the configuration at once (a new map element: a
// packet sees the old one or the new one, never half of each).
func (p *Program) SetConfig(c Config) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(c.Deny) > DenyMax {
		return fmt.Errorf("%d prefixes to deny: the program takes %d", len(c.Deny), DenyMax)
	}
	for _, d := range c.Deny {
		if !d.Addr().Is4() {
			continue
		}
		a := d.Masked().Addr().As4()
		key := make([]byte, 8) // struct deny_key: the length in this machine's order, the address
		p.order.PutUint32(key, uint32(d.Bits()))
		copy(key[4:], a[:])
		if err := bpfload.MapElem(unix.BPF_MAP_UPDATE_ELEM, p.denyFD, key, []byte{1}); err != nil {
			return fmt.Errorf("BPF deny map: %w", err)
		}
	}
	p.cfg = c
	return bpfload.MapElem(unix.BPF_MAP_UPDATE_ELEM, p.cfgFD, make([]byte, 4), p.encode(c))
}

// SetRoamed replaces the clients whose IPv4 packets take the stack's
// second pass even when they could go direct: those that roamed here,
// whose packets l3roamd rewrites in netfilter. More than RoamedMax turn
// direct sending off for everyone until fewer are left.
func (p *Program) SetRoamed(clients []netip.Addr) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	want := map[netip.Addr]bool{}
	for _, a := range clients {
		if a.Is4() {
			want[a] = true
		}
	}
	if len(want) > RoamedMax {
		p.tooMany = true
		if err := p.writeConfig(); err != nil {
			return err
		}
		return fmt.Errorf("%d roamed clients: the program takes %d, so no packet goes direct", len(want), RoamedMax)
	}
	// (the new ones are in before the flag says there are any)
	for a := range want {
		if !p.roamed[a] {
			k := a.As4()
			if err := bpfload.MapElem(unix.BPF_MAP_UPDATE_ELEM, p.roamFD, k[:], []byte{1}); err != nil {
				return fmt.Errorf("BPF roamed map: %w", err)
			}
			p.roamed[a] = true
		}
	}
	for a := range p.roamed {
		if !want[a] {
			k := a.As4()
			bpfload.MapElem(unix.BPF_MAP_DELETE_ELEM, p.roamFD, k[:], nil)
			delete(p.roamed, a)
		}
	}
	p.tooMany = false
	return p.writeConfig()
}

// MapClient makes v4 the IPv4 address of the client v6 in both directions
// (PLAT mode). Without a program it does nothing.
func (p *Program) MapClient(v4 [4]byte, v6 [16]byte) error {
	if p == nil {
		return nil
	}
	// (the way back first: a client's packets go on only when its
	// replies can come back)
	if err := bpfload.MapElem(unix.BPF_MAP_UPDATE_ELEM, p.cl4FD, v4[:], v6[:]); err != nil {
		return fmt.Errorf("BPF client map: %w", err)
	}
	if err := bpfload.MapElem(unix.BPF_MAP_UPDATE_ELEM, p.cl6FD, v6[:], v4[:]); err != nil {
		bpfload.MapElem(unix.BPF_MAP_DELETE_ELEM, p.cl4FD, v4[:], nil)
		return fmt.Errorf("BPF client map: %w", err)
	}
	return nil
}

// UnmapClient removes what MapClient made.
func (p *Program) UnmapClient(v4 [4]byte, v6 [16]byte) {
	if p == nil {
		return
	}
	bpfload.MapElem(unix.BPF_MAP_DELETE_ELEM, p.cl6FD, v6[:], nil)
	bpfload.MapElem(unix.BPF_MAP_DELETE_ELEM, p.cl4FD, v4[:], nil)
}

func (p *Program) writeConfig() error {
	if err := bpfload.MapElem(unix.BPF_MAP_UPDATE_ELEM, p.cfgFD, make([]byte, 4), p.encode(p.cfg)); err != nil {
		return fmt.Errorf("BPF config: %w", err)
	}
	return nil
}

// Counters sums the per-CPU counters by name (none without a program).
func (p *Program) Counters() map[string]uint64 {
	if p == nil {
		return nil
	}
	m := map[string]uint64{}
	for i, name := range counterNames {
		if n, ok := bpfload.PerCPUSum(p.countFD, p.ncpu, uint32(i)); ok {
			m[name] = n
		}
	}
	return m
}

// Close detaches the program if it is attached and frees it and its maps.
func (p *Program) Close() error {
	if p == nil {
		return nil
	}
	var err error
	if p.early != 0 {
		err = DetachEarly(p.early)
		p.early = 0
	}
	if p.attached != 0 {
		if e := detach(p.attached); e != nil {
			err = e
		}
		p.attached = 0
	}
	for _, fd := range []*int{&p.fd, &p.cfgFD, &p.countFD, &p.denyFD, &p.roamFD, &p.cl4FD, &p.cl6FD} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
	return err
}

package platd

import (
	"fmt"
	"net/netip"
	"sync/atomic"

	"github.com/gluon-464xlat/gluon-464xlat/internal/nftexpr"
	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// platd's own nftables table (family inet), so it coexists with OpenWrt's
// fw4: its chains run one priority step before fw4's, its NAT binds each new
// session first (the SNAT with platd's port range wins over fw4's masquerade).
//
//	table inet platd {
//	  counter refused_source {}; counter refused_spoof {}; counter refused_sessions {}
//	  chain raw { type filter hook prerouting priority raw
//	    meta nfproto ipv6 ip6 daddr PLAT/96 ip6 daddr != PLAT::192.0.0.1 ip6 saddr CLAT_RANGE notrack
//	    meta nfproto ipv6 ip6 daddr PLAT/96 ip6 daddr != PLAT::192.0.0.1 meta l4proto icmpv6 icmpv6 type < 128 notrack
//	    iifname "plat" meta nfproto ipv6 notrack
//	  }
//	  chain forward { type filter hook forward priority -1
//	    oifname "plat" meta nfproto ipv6 ct state new ip6 saddr != CLAT_RANGE counter name refused_source reject with icmpx admin-prohibited
//	    iifname "plat" meta nfproto ipv4 jump from_plat
//	  }
//	  chain from_plat {
//	    ip saddr != CLIENT_POOL counter name refused_spoof drop
//	    ct state & new == 0 return
//	    meta l4proto tcp tcp flags & (fin|syn|rst|ack) != syn counter name dropped_midstream drop
//	    add @ports { ip daddr . meta l4proto . th dport ct count over LIMIT } counter name refused_ports reject with icmpx admin-prohibited
//	      (ranges of 1024 ports or more, portguard.go: ip daddr . meta l4proto . th dport @ports_full counter name refused_ports reject ...,
//	       ICMP with port 0; platd fills the set as conntrack's events count)
//	    jump gate_full
//	    ct count over N counter name refused_sessions reject with icmpx admin-prohibited
//	  }
//	  chain gate_full {}   # holds "counter name refused_full reject ..." while conntrack is nearly full
//	  chain postrouting { type nat hook postrouting priority 99
//	    oifname WAN meta nfproto ipv4 ip saddr CLIENT_POOL ct mark set ct mark | SESSION snat ip to WAN_ADDRESS:61000-65535
//	  }
//	}
//
// A session is one conntrack entry, the IPv4 one: the clients' IPv6 towards
// the PLAT prefix (and ICMPv6 errors about it) and the translated answers
// are not tracked, as each client's address maps statelessly onto its own
// in the pool (clients.go). Tracking them cost a second entry per session:
// half the set-up work. The management address stays tracked (prefixd's
// probes and l3roamd's ROAMs are the exit's own traffic).
//
// SNAT to the WAN address rather than "masquerade to :ports": google/nftables
// v0.3.0 sends a masquerade's port registers without NF_NAT_RANGE_PROTO_SPECIFIED,
// and the kernel then ignores the range. platd follows the WAN address
// itself (wan.go) and reinstalls the table when it changes.
type nftNAT struct {
	table    *nftables.Table
	fromPLAT *nftables.Chain // what the TUN sends towards IPv4 (forward jumps to it)
	full     atomic.Bool     // conntrack nearly full: gate_full refuses new sessions
	// the port guard's destinations (portguard.go), put back on install
	portsFull map[destKey]bool
}

// portsFullSet holds the destinations whose WAN ports are used up (the
// port guard keeps it): ip daddr . meta l4proto . th dport, ICMP with port 0.
func portsFullSet(t *nftables.Table) *nftables.Set {
	return &nftables.Set{Table: t, Name: "ports_full", Concatenation: true,
		KeyType: nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService)}
}

// setKey is k as ports_full stores it: each part in a 4-byte register.
func setKey(k destKey) []byte {
	return []byte{k.Addr[0], k.Addr[1], k.Addr[2], k.Addr[3], k.Proto, 0, 0, 0, byte(k.Port >> 8), byte(k.Port), 0, 0}
}

// addPortsFull adds ports_full with the guard's destinations and the rules
// that refuse new sessions to them: ICMP looks its destination up with
// port 0, everything else with its destination port.
func (n *nftNAT) addPortsFull(cc *nftables.Conn, c *config) error {
	set := portsFullSet(n.table)
	var elems []nftables.SetElement
	for k := range n.portsFull {
		elems = append(elems, nftables.SetElement{Key: setKey(k)})
	}
	if err := cc.AddSet(set, elems); err != nil {
		return err
	}
	for _, icmp := range []bool{true, false} {
		op, port := expr.CmpOpNeq, expr.Any(&expr.Payload{DestRegister: 10, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2})
		if icmp {
			op, port = expr.CmpOpEq, &expr.Immediate{Register: 10, Data: []byte{0, 0}}
		}
		cc.AddRule(&nftables.Rule{Table: n.table, Chain: n.fromPLAT, Exprs: nftexpr.Join(
			nftexpr.MetaCmp(expr.MetaKeyL4PROTO, op, []byte{unix.IPPROTO_ICMP}),
			[]expr.Any{
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: nftexpr.IPv4Dst, Len: 4},
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 9},
				port,
				&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID},
				nftexpr.Counter("refused_ports"), nftexpr.RejectAdmin(),
			})})
	}
	return nil
}

func (n *nftNAT) setPortsFull(k destKey, full bool) error {
	if n.table == nil {
		return nil
	}
	cc, err := nftables.New()
	if err != nil {
		return err
	}
	set, elems := portsFullSet(n.table), []nftables.SetElement{{Key: setKey(k)}}
	if full {
		err = cc.SetAddElements(set, elems)
	} else {
		err = cc.SetDeleteElements(set, elems)
	}
	if err == nil {
		err = cc.Flush()
	}
	if err != nil {
		return err
	}
	if n.portsFull == nil {
		n.portsFull = map[destKey]bool{}
	}
	if full {
		n.portsFull[k] = true
	} else {
		delete(n.portsFull, k)
	}
	return nil
}

func (n *nftNAT) fullRule(cc *nftables.Conn, full *nftables.Chain) {
	cc.AddRule(&nftables.Rule{Table: n.table, Chain: full, Exprs: []expr.Any{nftexpr.Counter("refused_full"), nftexpr.RejectAdmin()}})
}

// setFull switches the refusal of new sessions on or off.
func (n *nftNAT) setFull(on bool) error {
	cc, err := nftables.New()
	if err != nil {
		return err
	}
	full := &nftables.Chain{Name: "gate_full", Table: n.table}
	cc.FlushChain(full)
	if on {
		n.fullRule(cc, full)
	}
	if err := cc.Flush(); err != nil {
		return err
	}
	n.full.Store(on)
	return nil
}

var nftCounters = []string{"refused_source", "refused_spoof", "refused_sessions", "refused_ports", "refused_full", "dropped_midstream"}

// install replaces platd's table (a crashed run's leftovers included) in one
// netlink transaction. Without a WAN address yet, IPv4 is not NATed (nor
// routed: the uplink has no address); purgeUnNATed deletes what passed.
func (n *nftNAT) install(c *config, wan netip.Addr) error {
	cc, err := nftables.New()
	if err != nil {
		return err
	}
	n.table = &nftables.Table{Family: nftables.TableFamilyINet, Name: c.table}
	// add, delete, add: replaces a crashed run's leftovers (or the table of a
	// WAN address change) without a moment in which no table exists
	cc.AddTable(n.table)
	cc.DelTable(n.table)
	t := cc.AddTable(n.table)
	for _, name := range nftCounters {
		cc.AddObj(&nftables.CounterObj{Table: t, Name: name})
	}
	accept := nftables.ChainPolicyAccept
	fwd := cc.AddChain(&nftables.Chain{Name: "forward", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityRef(-1), Policy: &accept})
	// What leaves the TUN towards IPv4 takes one jump: the checks below
	// run once for it (an interface name compare and a ct state load each
	// were most of what these rules cost a new session) and never for
	// other traffic.
	from := cc.AddChain(&nftables.Chain{Name: "from_plat", Table: t})
	n.fromPLAT = from
	nat := cc.AddChain(&nftables.Chain{Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityRef(99)})
	raw := cc.AddChain(&nftables.Chain{Name: "raw", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRaw, Policy: &accept})
	mgmt := c.mgmtAddr().As16()
	toPLAT := nftexpr.Join(nftexpr.NFProto(unix.NFPROTO_IPV6), nftexpr.AddrIn(nftexpr.IPv6Dst, c.plat.Prefix(), expr.CmpOpEq),
		[]expr.Any{nftexpr.LoadAddr(nftexpr.IPv6Dst, true), &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: mgmt[:]}})
	cc.AddRule(&nftables.Rule{Table: t, Chain: raw, Exprs: nftexpr.Join(toPLAT,
		nftexpr.AddrIn(nftexpr.IPv6Src, c.clatRange, expr.CmpOpEq), []expr.Any{&expr.Notrack{}})})
	cc.AddRule(&nftables.Rule{Table: t, Chain: raw, Exprs: nftexpr.Join(toPLAT,
		nftexpr.MetaIs(expr.MetaKeyL4PROTO, []byte{unix.IPPROTO_ICMPV6}),
		[]expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
			&expr.Cmp{Op: expr.CmpOpLt, Register: 1, Data: []byte{128}}, // an error
			&expr.Notrack{},
		})})
	cc.AddRule(&nftables.Rule{Table: t, Chain: raw, Exprs: nftexpr.Join(
		nftexpr.IIF(c.Dev), nftexpr.NFProto(unix.NFPROTO_IPV6), []expr.Any{&expr.Notrack{}})})
	pool := c.clientPool

	// The gate: only the mesh's CLATs open sessions (errors and replies
	// belonging to a session pass, e.g. Packet Too Big from a mesh router).
	cc.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: nftexpr.Join(
		nftexpr.OIF(c.Dev), nftexpr.NFProto(unix.NFPROTO_IPV6), nftexpr.CtStateNew(),
		nftexpr.AddrIn(nftexpr.IPv6Src, c.clatRange, expr.CmpOpNeq), []expr.Any{nftexpr.Counter("refused_source"), nftexpr.RejectAdmin()})})
	cc.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: nftexpr.Join(
		nftexpr.IIF(c.Dev), nftexpr.NFProto(unix.NFPROTO_IPV4), []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: from.Name}})})
	// Nothing but the client pool leaves the TUN towards IPv4.
	cc.AddRule(&nftables.Rule{Table: t, Chain: from, Exprs: nftexpr.Join(
		nftexpr.AddrIn(nftexpr.IPv4Src, pool, expr.CmpOpNeq), []expr.Any{nftexpr.Counter("refused_spoof"), &expr.Verdict{Kind: expr.VerdictDrop}})})
	// The rest is about new sessions only.
	cc.AddRule(&nftables.Rule{Table: t, Chain: from, Exprs: nftexpr.Join(
		nftexpr.CtStateNotNew(), []expr.Any{&expr.Verdict{Kind: expr.VerdictReturn}})})
	// No session starts mid-stream: a TCP segment other than a SYN with no
	// session is a client that roamed and whose ROAM has not arrived yet.
	// Dropped, it is retransmitted into its own session a moment later;
	// passed, it would open a new one and the server would reset the
	// client's connection.
	cc.AddRule(&nftables.Rule{Table: t, Chain: from, Exprs: nftexpr.Join(
		nftexpr.MetaIs(expr.MetaKeyL4PROTO, []byte{unix.IPPROTO_TCP}),
		[]expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0x17}, Xor: []byte{0}}, // FIN|SYN|RST|ACK
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0x02}},
			nftexpr.Counter("dropped_midstream"), &expr.Verdict{Kind: expr.VerdictDrop},
		})})
	// Port exhaustion: one source port per session towards the same
	// destination address, protocol and port; beyond the range, refuse.
	if c.guardByEvents() {
		if err := n.addPortsFull(cc, c); err != nil {
			return err
		}
	} else {
		ports := &nftables.Set{Table: t, Name: "ports", Dynamic: true, Concatenation: true,
			KeyType: nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService)}
		if err := cc.AddSet(ports, nil); err != nil {
			return err
		}
		cc.AddRule(&nftables.Rule{Table: t, Chain: from, Exprs: nftexpr.Join(
			[]expr.Any{
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: nftexpr.IPv4Dst, Len: 4},
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 9},
				&expr.Payload{DestRegister: 10, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
				&expr.Dynset{SrcRegKey: 1, SetName: ports.Name, SetID: ports.ID, Operation: 0, // NFT_DYNSET_OP_ADD
					Exprs: []expr.Any{&expr.Connlimit{Count: uint32(guardLimit(int(c.portMax-c.portMin) + 1)), Flags: nftConnlimitInv}}},
				nftexpr.Counter("refused_ports"), nftexpr.RejectAdmin(),
			})})
	}
	full := cc.AddChain(&nftables.Chain{Name: "gate_full", Table: t})
	cc.AddRule(&nftables.Rule{Table: t, Chain: from, Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: full.Name}}})
	if n.full.Load() {
		n.fullRule(cc, full)
	}
	if c.maxSessions > 0 {
		cc.AddRule(&nftables.Rule{Table: t, Chain: from, Exprs: nftexpr.Join(
			[]expr.Any{&expr.Connlimit{Count: c.maxSessions, Flags: nftConnlimitInv},
				nftexpr.Counter("refused_sessions"), nftexpr.RejectAdmin()})})
	}
	// IPv4 SNAT to the uplink in platd's port range. No random port
	// selection: without it the kernel reuses a source's mapping for its
	// next destination, the Endpoint-Independent Mapping RFC 6146 section
	// 3.5.1 asks for (e2e: platEndpointIndependentMapping).
	if wan.IsValid() {
		cc.AddRule(&nftables.Rule{Table: t, Chain: nat, Exprs: nftexpr.Join(
			nftexpr.OIF(c.wanDev), nftexpr.NFProto(unix.NFPROTO_IPV4),
			nftexpr.AddrIn(nftexpr.IPv4Src, pool, expr.CmpOpEq), nftexpr.CtMarkOr(sessionMark),
			[]expr.Any{&expr.Immediate{Register: 1, Data: wan.AsSlice()},
				&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(c.portMin)},
				&expr.Immediate{Register: 3, Data: binaryutil.BigEndian.PutUint16(c.portMax)},
				&expr.NAT{Type: expr.NATTypeSourceNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegAddrMax: 1,
					RegProtoMin: 2, RegProtoMax: 3, Specified: true}})})
	}
	if err := cc.Flush(); err != nil {
		return fmt.Errorf("nftables table %s: %w", c.table, err)
	}
	return nil
}

// remove deletes platd's table (its NAT bindings live on in conntrack).
func (n *nftNAT) remove() error {
	if n.table == nil {
		return nil
	}
	cc, err := nftables.New()
	if err != nil {
		return err
	}
	cc.DelTable(n.table)
	return cc.Flush()
}

// counters reads the named counters (packets).
func (n *nftNAT) counters() map[string]uint64 {
	res := map[string]uint64{}
	cc, err := nftables.New()
	if err != nil {
		return res
	}
	objs, err := cc.GetObjects(n.table)
	if err != nil {
		return res
	}
	for _, o := range objs {
		if c, ok := o.(*nftables.CounterObj); ok {
			res[c.Name] = c.Packets
		}
	}
	return res
}

// nftConnlimitInv is NFT_CONNLIMIT_F_INV ("ct count over N" rather than
// "not over"), from linux/netfilter/nf_tables.h; x/sys/unix lacks it.
const nftConnlimitInv = 1

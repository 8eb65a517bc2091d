package l3roamd

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/gluon-464xlat/gluon-464xlat/internal/addrplan"
	"github.com/gluon-464xlat/gluon-464xlat/internal/nftexpr"
)

// l3roamd's own table holds every piece of roaming state the kernel needs,
// so that a restarted l3roamd reads it back instead of losing or doubling it:
//
//	table inet l3roamd {
//	  set proam_<PLATC> { type ipv6_addr; flags timeout }   node: CLAT::ip of its clients whose sessions use PLATC
//	  map origin { type ipv6_addr : ipv6_addr; flags timeout } node: CLAT::ip -> CLATD::ip of its clients (state only)
//	  map platc { type ipv6_addr : ipv6_addr; flags timeout }  node: CLAT::ip -> PLATC:: of its clients (state only)
//	  map from { type ipv6_addr : ipv6_addr; flags timeout }   PLAT: CLATB::ip -> CLATD::ip
//	  map to { type ipv6_addr : ipv6_addr; flags timeout }     PLAT: CLATD::ip -> CLATB::ip
//	  chain raw { type filter hook prerouting priority raw
//	    iifname CLIENT ip6 saddr & /48 == CLAT_RANGE|PLAT_RANGE counter drop
//	    iifname CLAT ip6 saddr @proam_X ip6 daddr set ip6 daddr & ::ffff:ffff | PLATC_X
//	    ip6 daddr @proam_X ip6 saddr & /96 == PLATC_X ip6 saddr set ip6 saddr & ::ffff:ffff | PLAT_NOW
//	    iifname != PLAT ip6 saddr set ip6 saddr map @from
//	  }
//	  chain after_dnat { type filter hook prerouting priority dstnat + 1
//	    iifname PLAT ip6 daddr set ip6 daddr map @to
//	  }
//	}
//
// Why stateless address rewriting and not the seed's NETMAP: NAT rules see
// only the first packet of a connection. A client's running TCP session is
// already in conntrack under CLATD::ip; rewriting CLATB::ip back to it
// before conntrack (priority raw) lets the packets find that session, and
// rewriting replies after conntrack has undone the exit's NAT66 sends them
// to where the client is now. The per-client entries expire with the lease,
// like the seed's sets. The kernel fixes the TCP/UDP/ICMPv6 checksums
// (see write; ICMPv6 inside extension headers and the packets quoted in
// ICMPv6 errors are not rewritten).
type nftState struct {
	table     string
	clientDev string
	clatDev   string
	platDev   string
	ranges    []netip.Prefix // the mesh's clat_range and plat_range: never a source on a client port
}

// desired is what the table must hold; apply writes it in one transaction.
type desired struct {
	own   netip.Prefix             // this node's CLAT /96 (may be invalid)
	plat  netip.Prefix             // the node's PLAT now (may be invalid)
	xlat  map[netip.Addr]xlatState // client IPv4 -> its 464xlat state
	roams map[netip.Addr]roamed    // PLAT: CLATD::ip -> where the client is now
}

const l4csumPseudo = 1 // NFT_PAYLOAD_L4CSUM_PSEUDOHDR

func setName(platc netip.Prefix) string {
	a := platc.Addr().As16()
	return "proam_" + hex.EncodeToString(a[:12])
}

func platcOfSet(name string) (netip.Prefix, bool) {
	h, ok := strings.CutPrefix(name, "proam_")
	b, err := hex.DecodeString(h)
	if !ok || err != nil || len(b) != 12 {
		return netip.Prefix{}, false
	}
	var a [16]byte
	copy(a[:], b)
	return netip.PrefixFrom(netip.AddrFrom16(a), 96), true
}

func ttl(exp, now time.Time) time.Duration {
	d := exp.Sub(now).Truncate(time.Second)
	if d < time.Second {
		d = time.Second
	}
	return d
}

// apply replaces the table with d in one transaction (add, delete, add:
// the kernel applies all or nothing, so traffic never sees a half table).
func (n *nftState) apply(d *desired, now time.Time) error {
	c, t, err := n.empty()
	if err != nil {
		return err
	}
	c.AddTable(t)
	ip6 := nftexpr.NFProto(unix.NFPROTO_IPV6)
	newMap := func(name string, entries []roamed) (*nftables.Set, error) {
		s := &nftables.Set{Table: t, Name: name, KeyType: nftables.TypeIP6Addr, DataType: nftables.TypeIP6Addr, IsMap: true, HasTimeout: true}
		var els []nftables.SetElement
		for _, r := range entries {
			k, v := r.now.As16(), r.home.As16()
			els = append(els, nftables.SetElement{Key: k[:], Val: v[:], Timeout: ttl(r.expires, now)})
		}
		return s, c.AddSet(s, els)
	}
	var origin, platc, from, to []roamed
	proam := map[netip.Prefix]map[netip.Addr]time.Time{}
	if d.own.IsValid() {
		for ip4, x := range d.xlat {
			me := addrplan.In96(d.own, ip4)
			origin = append(origin, roamed{now: me, home: addrplan.In96(x.clatd, ip4), expires: x.expires})
			platc = append(platc, roamed{now: me, home: x.platc.Addr(), expires: x.expires})
			if x.platc.IsValid() && x.platc != d.plat {
				if proam[x.platc] == nil {
					proam[x.platc] = map[netip.Addr]time.Time{}
				}
				proam[x.platc][me] = x.expires
			}
		}
	}
	for _, r := range d.roams {
		from = append(from, r)
		to = append(to, roamed{now: r.home, home: r.now, expires: r.expires})
	}
	if _, err := newMap("origin", origin); err != nil {
		return err
	}
	if _, err := newMap("platc", platc); err != nil {
		return err
	}
	fromMap, err := newMap("from", from)
	if err != nil {
		return err
	}
	toMap, err := newMap("to", to)
	if err != nil {
		return err
	}
	accept := nftables.ChainPolicyAccept
	raw := c.AddChain(&nftables.Chain{Name: "raw", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRaw, Policy: &accept})
	afterDNAT := c.AddChain(&nftables.Chain{Name: "after_dnat", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRef(*nftables.ChainPriorityNATDest + 1), Policy: &accept})

	// A client must not send from the mesh's own ranges: it could claim
	// another node's CLAT addresses or a PLAT's.
	if n.clientDev != "" {
		for _, r := range n.ranges {
			ex := append(append(nftexpr.IIF(n.clientDev), ip6...), nftexpr.AddrIn(nftexpr.IPv6Src, r, expr.CmpOpEq)...)
			c.AddRule(&nftables.Rule{Table: t, Chain: raw, Exprs: append(ex, &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop})})
		}
	}
	// in a fixed order, so that the same state is the same table
	platcs := make([]netip.Prefix, 0, len(proam))
	for p := range proam {
		platcs = append(platcs, p)
	}
	slices.SortFunc(platcs, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	for _, platc := range platcs {
		members := proam[platc]
		s := &nftables.Set{Table: t, Name: setName(platc), KeyType: nftables.TypeIP6Addr, HasTimeout: true}
		var els []nftables.SetElement
		for a, exp := range members {
			k := a.As16()
			els = append(els, nftables.SetElement{Key: k[:], Timeout: ttl(exp, now)})
		}
		if err := c.AddSet(s, els); err != nil {
			return err
		}
		// the client's packets towards the internet go to its old PLAT
		platc := platc
		bothRules(c, t, raw, append(append(nftexpr.IIF(n.clatDev), ip6...), lookup(nftexpr.IPv6Src, s)...),
			func(icmp bool) []expr.Any { return rewrite96(nftexpr.IPv6Dst, platc, icmp) })
		// and that PLAT's replies look like the current PLAT's to clatd
		if d.plat.IsValid() && d.plat != platc {
			bothRules(c, t, raw, append(append(append([]expr.Any{}, ip6...), lookup(nftexpr.IPv6Dst, s)...), nftexpr.AddrIn(nftexpr.IPv6Src, platc, expr.CmpOpEq)...),
				func(icmp bool) []expr.Any { return rewrite96(nftexpr.IPv6Src, d.plat, icmp) })
		}
	}
	if n.platDev != "" {
		bothRules(c, t, raw, append(nftexpr.MetaCmp(expr.MetaKeyIIFNAME, expr.CmpOpNeq, nftexpr.IfName(n.platDev)), ip6...),
			func(icmp bool) []expr.Any { return mapRewrite(nftexpr.IPv6Src, fromMap, icmp) })
		bothRules(c, t, afterDNAT, append(nftexpr.IIF(n.platDev), ip6...),
			func(icmp bool) []expr.Any { return mapRewrite(nftexpr.IPv6Dst, toMap, icmp) })
	}
	return c.Flush()
}

// empty starts a transaction that deletes the table whether it exists or
// not (adding an existing table is no error, deleting a missing one is).
func (n *nftState) empty() (*nftables.Conn, *nftables.Table, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, nil, err
	}
	t := &nftables.Table{Name: n.table, Family: nftables.TableFamilyINet}
	c.AddTable(t)
	c.DelTable(t)
	return c, t, nil
}

// read loads what a previous run left in the table (nothing if absent):
// the clients' 464xlat state and the PLAT's roamed clients, with the time
// their entries have left.
func (n *nftState) read(own netip.Prefix, now time.Time) (map[netip.Addr]xlatState, map[netip.Addr]roamed, error) {
	xlat, roams := map[netip.Addr]xlatState{}, map[netip.Addr]roamed{}
	c, err := nftables.New()
	if err != nil {
		return nil, nil, err
	}
	t := &nftables.Table{Name: n.table, Family: nftables.TableFamilyINet}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, nil, fmt.Errorf("listing tables: %w", err)
	}
	found := false
	for _, x := range tables {
		found = found || x.Name == n.table
	}
	if !found {
		return xlat, roams, nil
	}
	sets, err := c.GetSets(t)
	if err != nil {
		return nil, nil, fmt.Errorf("reading table %s: %w", n.table, err)
	}
	for _, s := range sets {
		if !s.IsMap {
			continue // proam_* sets follow from the platc map
		}
		els, err := c.GetSetElements(s)
		if err != nil {
			return nil, nil, fmt.Errorf("reading %s: %w", s.Name, err)
		}
		for _, e := range els {
			if len(e.Key) != 16 || len(e.Val) != 16 {
				continue
			}
			k, v := netip.AddrFrom16([16]byte(e.Key)), netip.AddrFrom16([16]byte(e.Val))
			exp := now.Add(e.Expires)
			ip4 := netip.AddrFrom4([4]byte(e.Key[12:16]))
			x := xlat[ip4]
			switch s.Name {
			case "origin":
				x.clatd, x.expires = netip.PrefixFrom(v, 96).Masked(), exp
			case "platc":
				x.platc, x.expires = netip.PrefixFrom(v, 96).Masked(), exp
			case "from":
				roams[v] = roamed{home: v, now: k, expires: exp}
				continue
			default:
				continue
			}
			if own.IsValid() && own.Contains(k) {
				xlat[ip4] = x
			}
		}
	}
	return xlat, roams, nil
}

func lookup(off uint32, s *nftables.Set) []expr.Any {
	return []expr.Any{nftexpr.LoadAddr(off, true), &expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID}}
}

// write stores register 1 as the address at off and fixes the checksum the
// address is part of. The kernel updates TCP and UDP checksums for a
// pseudo-header change (NFT_PAYLOAD_L4CSUM_PSEUDOHDR) but not ICMPv6's, so
// for ICMPv6 the checksum field itself is named: an incremental update of
// the 16-bit word at network header + 40 + 2 (ICMPv6 right after the fixed
// header, which is where echo and error messages are).
func write(off uint32, icmp bool) expr.Any {
	p := &expr.Payload{OperationType: expr.PayloadWrite, SourceRegister: 1, Base: expr.PayloadBaseNetworkHeader,
		Offset: off, Len: 16, CsumType: expr.CsumTypeNone, CsumFlags: l4csumPseudo}
	if icmp {
		p.CsumType, p.CsumOffset, p.CsumFlags = expr.CsumTypeInet, 40+2, 0
	}
	return p
}

// bothRules adds match+rewrite twice: for ICMPv6 directly after the IPv6
// header, and for everything else (see write).
func bothRules(c *nftables.Conn, t *nftables.Table, ch *nftables.Chain, match []expr.Any, rewrite func(icmp bool) []expr.Any) {
	for _, icmp := range []bool{true, false} {
		op := expr.CmpOpNeq
		if icmp {
			op = expr.CmpOpEq
		}
		ex := append(append([]expr.Any{}, match...),
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 6, Len: 1},
			&expr.Cmp{Op: op, Register: 1, Data: []byte{unix.IPPROTO_ICMPV6}})
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: append(ex, rewrite(icmp)...)})
	}
}

// rewrite96 replaces the /96 of the address at off with p, keeping the
// embedded IPv4 (RFC 6052): (addr & ::ffff:ffff) ^ p.
func rewrite96(off uint32, p netip.Prefix, icmp bool) []expr.Any {
	mask := make([]byte, 16)
	copy(mask[12:], []byte{0xff, 0xff, 0xff, 0xff})
	a := p.Addr().As16()
	copy(a[12:], []byte{0, 0, 0, 0})
	return []expr.Any{nftexpr.LoadAddr(off, true), &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 16, Mask: mask, Xor: a[:]}, write(off, icmp)}
}

// mapRewrite replaces the address at off by its value in map m, if any.
func mapRewrite(off uint32, m *nftables.Set, icmp bool) []expr.Any {
	return []expr.Any{nftexpr.LoadAddr(off, true), &expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: m.Name, SetID: m.ID}, write(off, icmp)}
}

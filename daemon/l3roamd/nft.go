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
// rewriting the exit's translated replies (after conntrack) sends them
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
	netns     int            // the network namespace's fd for tests (0: the daemon's own)

	// What the kernel holds since the last apply: the table's layout (its
	// sets and rules follow from it) and every set's elements. An apply
	// that keeps the layout changes elements only, so the rules (and the
	// counters of the client port's drops, which operators watch) stay.
	layout string
	elems  map[string]map[[16]byte]nftElem
}

// nftElem is an element of one of the table's sets or maps.
type nftElem struct {
	val     [16]byte // maps only
	expires time.Time
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

// elements is what d puts into the table's maps and sets, by set name, and
// the PLAT prefixes that have a proam set (sorted).
func (n *nftState) elements(d *desired) (map[string]map[[16]byte]nftElem, []netip.Prefix) {
	els := map[string]map[[16]byte]nftElem{"origin": {}, "platc": {}, "from": {}, "to": {}}
	var platcs []netip.Prefix
	if d.own.IsValid() {
		for ip4, x := range d.xlat {
			me := addrplan.In96(d.own, ip4).As16()
			els["origin"][me] = nftElem{addrplan.In96(x.clatd, ip4).As16(), x.expires}
			els["platc"][me] = nftElem{x.platc.Addr().As16(), x.expires}
			if x.platc.IsValid() && x.platc != d.plat {
				name := setName(x.platc)
				if els[name] == nil {
					els[name] = map[[16]byte]nftElem{}
					platcs = append(platcs, x.platc)
				}
				els[name][me] = nftElem{expires: x.expires}
			}
		}
	}
	for _, r := range d.roams {
		els["from"][r.now.As16()] = nftElem{r.home.As16(), r.expires}
		els["to"][r.home.As16()] = nftElem{r.now.As16(), r.expires}
	}
	// in a fixed order, so that the same state is the same table
	slices.SortFunc(platcs, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return els, platcs
}

func (n *nftState) conn() (*nftables.Conn, error) {
	if n.netns != 0 {
		return nftables.New(nftables.WithNetNSFd(n.netns))
	}
	return nftables.New()
}

// set is the table's set or map called name, for element changes.
func (n *nftState) set(t *nftables.Table, name string) *nftables.Set {
	s := &nftables.Set{Table: t, Name: name, KeyType: nftables.TypeIP6Addr, HasTimeout: true}
	if !strings.HasPrefix(name, "proam_") {
		s.IsMap, s.DataType = true, nftables.TypeIP6Addr
	}
	return s
}

func setElement(k [16]byte, e nftElem, isMap bool, now time.Time) nftables.SetElement {
	el := nftables.SetElement{Key: append([]byte(nil), k[:]...), Timeout: ttl(e.expires, now)}
	if isMap {
		el.Val = append([]byte(nil), e.val[:]...)
	}
	return el
}

// apply makes the table hold d: when the layout (the PLAT prefixes with
// roamed clients, the PLAT now) is the one the kernel has, by changing
// only the elements that differ; otherwise, and if that fails, by
// replacing the table. Either is one transaction: the kernel applies all or
// nothing, so traffic never sees a half table.
func (n *nftState) apply(d *desired, now time.Time) error {
	els, platcs := n.elements(d)
	layout := fmt.Sprint(platcs, d.plat)
	if n.elems != nil && layout == n.layout {
		if err := n.applyElements(els, now); err == nil {
			n.elems = els
			return nil
		}
	}
	n.elems = nil
	if err := n.replace(d, els, platcs, now); err != nil {
		return err
	}
	n.layout, n.elems = layout, els
	return nil
}

// applyElements changes the elements that differ from what the kernel
// holds (n.elems). One that expired is left alone: the kernel removed it
// already, or does within the second its timeout was rounded down by.
func (n *nftState) applyElements(els map[string]map[[16]byte]nftElem, now time.Time) error {
	c, err := n.conn()
	if err != nil {
		return err
	}
	t := &nftables.Table{Name: n.table, Family: nftables.TableFamilyINet}
	changed := false
	for name, want := range els {
		have := n.elems[name]
		s := n.set(t, name)
		var del, add []nftables.SetElement
		for k, e := range have {
			w, keep := want[k]
			if keep && w == e {
				continue
			}
			if e.expires.After(now.Add(time.Second)) {
				del = append(del, setElement(k, e, s.IsMap, now))
			}
			if keep {
				add = append(add, setElement(k, w, s.IsMap, now))
			}
		}
		for k, w := range want {
			if _, ok := have[k]; !ok {
				add = append(add, setElement(k, w, s.IsMap, now))
			}
		}
		if len(del) > 0 {
			if err := c.SetDeleteElements(s, del); err != nil {
				return err
			}
		}
		if len(add) > 0 {
			if err := c.SetAddElements(s, add); err != nil {
				return err
			}
		}
		changed = changed || len(del)+len(add) > 0
	}
	if !changed {
		return nil
	}
	return c.Flush()
}

// replace writes the whole table (add, delete, add).
func (n *nftState) replace(d *desired, els map[string]map[[16]byte]nftElem, platcs []netip.Prefix, now time.Time) error {
	c, t, err := n.empty()
	if err != nil {
		return err
	}
	c.AddTable(t)
	ip6 := nftexpr.NFProto(unix.NFPROTO_IPV6)
	newSet := func(name string) (*nftables.Set, error) {
		s := n.set(t, name)
		var list []nftables.SetElement
		for k, e := range els[name] {
			list = append(list, setElement(k, e, s.IsMap, now))
		}
		return s, c.AddSet(s, list)
	}
	for _, name := range []string{"origin", "platc"} {
		if _, err := newSet(name); err != nil {
			return err
		}
	}
	fromMap, err := newSet("from")
	if err != nil {
		return err
	}
	toMap, err := newSet("to")
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
	for _, platc := range platcs {
		s, err := newSet(setName(platc))
		if err != nil {
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
	c, err := n.conn()
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
	c, err := n.conn()
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

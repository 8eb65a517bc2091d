package l3roamd

import (
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/ti-mo/conntrack"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/gluon-464xlat/gluon-464xlat/internal/addrplan"
	"github.com/gluon-464xlat/gluon-464xlat/internal/ctdump"
	"github.com/gluon-464xlat/gluon-464xlat/internal/xtables"
)

// xtState is the legacy backend, for firmware without nftables: the seed's
// ipsets and ip6tables NETMAP in l3roamd's own chains, on the node the
// client roamed to (B, CLAT prefix OWN, PLAT now PLAT_NOW). The client's
// home address is CLATD::ip, its sessions live at PLATC.
//
//	ipset l3r_clients  hash:ip inet6 timeout comment  node: OWN::ip of its clients, comment "CLATD PLATC" (state only)
//	ipset l3r_roams    hash:ip inet6 timeout comment  PLAT: CLATB::ip, comment CLATD::ip (state only)
//	ipset l3r_p<PLATC> hash:ip inet6 timeout          node: OWN::ip of its clients whose sessions use PLATC
//	ipset l3r_c<CLATD> hash:ip inet6 timeout          node: OWN::ip of its clients that came from CLATD
//	ipset l3r_home     hash:ip inet6 timeout          node: CLATD::ip of the clients that came here
//	ip6tables -t raw PREROUTING -> L3ROAMD:   -i CLIENT -s CLAT_RANGE|PLAT_RANGE -j DROP
//	ip6tables -t nat PREROUTING -> L3ROAMD:   -i CLAT -d PLAT_NOW -m set l3r_p<PLATC> src -j NETMAP --to PLATC
//	                                          ! -i CLAT -m set l3r_home dst -j NETMAP --to OWN
//	ip6tables -t nat POSTROUTING -> L3ROAMD:  ! -o CLAT -s OWN -m set l3r_c<CLATD> src -j NETMAP --to CLATD
//	                                          -o CLAT -s PLATC -m set l3r_p<PLATC> dst -j NETMAP --to PLAT_NOW
//	ip -6 route CLATD::ip/128 dev CLAT in the export table, for every client (babeld carries it)
//
// Why the node and not the PLAT: NAT sees only a connection's first packet,
// so where nft.go rewrites every packet at the PLAT, this backend makes the
// roamed client's packets leave node B exactly as they left its home node
// (source CLATD::ip, destination PLATC), and the home address's host route
// brings the replies to B. The PLAT sees no change, and its conntrack and
// NAT keep the session. The client's sessions are new to B's conntrack;
// whichever direction sends first creates the entry, and the rules above
// translate it both ways. Entries B made for the client before its rules
// existed are deleted once they do, so the next packet makes them anew.
//
// A PLAT on this backend keeps ROAMs as state only; nodes on the nftables
// backend need PLATs on the nftables backend (their rewriting is at the
// PLAT), nodes on this backend work with PLATs on either.
type xtState struct {
	ipt         xtables.Family
	clientDev   string
	clatDev     string
	exportTable int
	ranges      []netip.Prefix
	// applied is what the previous apply wrote (nil: none yet);
	// conntrack is cleaned on the difference
	applied map[netip.Addr]roamedHere
	// the rules the previous apply wrote: rewritten only when they change,
	// so that their counters (the client port's spoofing drops) stay
	written []xtRule
}

const (
	xtChain   = "L3ROAMD"
	xtClients = "l3r_clients"
	xtRoams   = "l3r_roams"
	xtHome    = "l3r_home"
	xtTemp    = "l3r_tmp"
)

func newXTState(path string) (*xtState, error) {
	if path == "" {
		path = "ip6tables"
	}
	return &xtState{ipt: xtables.New(path)}, nil
}

// xtSetName names a per-prefix set: kind 'p' (a PLATC) or 'c' (a CLATD),
// then the /96's first 12 bytes (ipset names have at most 31 characters).
func xtSetName(kind byte, p netip.Prefix) string {
	a := p.Addr().As16()
	return "l3r_" + string(kind) + hex.EncodeToString(a[:12])
}

// ensureSet creates set if it does not exist (an existing one is kept).
func ensureSet(name string, comments bool) error {
	zero := uint32(0)
	err := netlink.IpsetCreate(name, "hash:ip", netlink.IpsetCreateOptions{Family: unix.AF_INET6, Timeout: &zero, Comments: comments})
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("ipset %s: %w", name, err)
	}
	return nil
}

type setEntry struct {
	addr    netip.Addr
	comment string
	expires time.Time
}

// fillSet replaces the content of set with entries at once: filled under
// another name, then swapped.
func fillSet(name string, comments bool, entries []setEntry, now time.Time) error {
	if err := ensureSet(name, comments); err != nil {
		return err
	}
	netlink.IpsetDestroy(xtTemp)
	if err := ensureSet(xtTemp, comments); err != nil {
		return err
	}
	defer netlink.IpsetDestroy(xtTemp)
	for _, e := range entries {
		t := uint32(ttl(e.expires, now) / time.Second)
		if err := netlink.IpsetAdd(xtTemp, &netlink.IPSetEntry{IP: net.IP(e.addr.AsSlice()), Timeout: &t, Comment: e.comment, Replace: true}); err != nil {
			return fmt.Errorf("ipset %s: %w", name, err)
		}
	}
	return netlink.IpsetSwap(xtTemp, name)
}

// xtRule is one rule of l3roamd's chain in table.
type xtRule struct {
	table string
	spec  []string
}

// roamedHere is what the node does for one client: the sets its address
// is in, and its home address when it came from another node.
type roamedHere struct {
	me, home     netip.Addr // OWN::ip, CLATD::ip
	clatd, platc netip.Prefix
	platNow      netip.Prefix // what is mapped to platc: a change needs new conntrack entries too
}

// natNeeds lists the clients that need rules: sessions at another PLAT
// than the node's, or a home address at another node.
func natNeeds(d *desired) map[netip.Addr]roamedHere {
	need := map[netip.Addr]roamedHere{}
	if !d.own.IsValid() {
		return need
	}
	for ip4, s := range d.xlat {
		r := roamedHere{me: addrplan.In96(d.own, ip4), clatd: s.clatd, platc: s.platc}
		if s.clatd.IsValid() && s.clatd != d.own {
			r.home = addrplan.In96(s.clatd, ip4)
		}
		if !s.platc.IsValid() || !d.plat.IsValid() || s.platc == d.plat {
			r.platc = netip.Prefix{}
		} else {
			r.platNow = d.plat
		}
		if r.home.IsValid() || r.platc.IsValid() {
			need[ip4] = r
		}
	}
	return need
}

func (x *xtState) apply(d *desired, now time.Time) error {
	var clients, roams, home []setEntry
	byPLATC, byCLATD := map[netip.Prefix][]setEntry{}, map[netip.Prefix][]setEntry{}
	if d.own.IsValid() {
		for ip4, s := range d.xlat {
			clients = append(clients, setEntry{addrplan.In96(d.own, ip4), prefixOrDash(s.clatd) + " " + prefixOrDash(s.platc), s.expires})
		}
	}
	need := natNeeds(d)
	for ip4, r := range need {
		exp := d.xlat[ip4].expires
		if r.platc.IsValid() {
			byPLATC[r.platc] = append(byPLATC[r.platc], setEntry{addr: r.me, expires: exp})
		}
		if r.home.IsValid() {
			byCLATD[r.clatd] = append(byCLATD[r.clatd], setEntry{addr: r.me, expires: exp})
			home = append(home, setEntry{addr: r.home, expires: exp})
		}
	}
	for _, r := range d.roams {
		roams = append(roams, setEntry{r.now, r.home.String(), r.expires})
	}
	for _, s := range []struct {
		name     string
		comments bool
		entries  []setEntry
	}{{xtClients, true, clients}, {xtRoams, true, roams}, {xtHome, false, home}} {
		if err := fillSet(s.name, s.comments, s.entries, now); err != nil {
			return err
		}
	}
	keep := []string{xtClients, xtRoams, xtHome}
	for _, m := range []struct {
		kind byte
		sets map[netip.Prefix][]setEntry
	}{{'p', byPLATC}, {'c', byCLATD}} {
		for p, members := range m.sets {
			if err := fillSet(xtSetName(m.kind, p), false, members, now); err != nil {
				return err
			}
			keep = append(keep, xtSetName(m.kind, p))
		}
	}
	if rs := x.rules(d, byPLATC, byCLATD); x.written == nil || !slices.EqualFunc(rs, x.written, func(a, b xtRule) bool {
		return a.table == b.table && slices.Equal(a.spec, b.spec)
	}) {
		if err := x.writeRules(rs); err != nil {
			x.written = nil
			return err
		}
		x.written = rs
	}
	destroyStaleSets(keep)
	// Every client's home address, also of the clients at home: when a
	// client comes back, the node it was at retracts its route, and babeld
	// would make the address unreachable mesh-wide for minutes (its guard
	// against loops) unless another node announces it.
	var homes []netip.Addr
	for ip4, s := range d.xlat {
		if s.clatd.IsValid() {
			homes = append(homes, addrplan.In96(s.clatd, ip4))
		}
	}
	x.syncHomeRoutes(homes)
	x.cleanConntrack(need)
	x.applied = need
	return nil
}

// rules is the content of l3roamd's chains for d, in a stable order.
func (x *xtState) rules(d *desired, byPLATC, byCLATD map[netip.Prefix][]setEntry) []xtRule {
	var rs []xtRule
	if x.clientDev != "" {
		for _, r := range x.ranges {
			rs = append(rs, xtRule{"raw", []string{"-i", x.clientDev, "-s", r.String(), "-j", "DROP"}})
		}
	}
	for _, p := range sortedPrefixes(byPLATC) {
		set := xtSetName('p', p)
		rs = append(rs,
			xtRule{"nat", []string{"-i", x.clatDev, "-d", d.plat.String(), "-m", "set", "--match-set", set, "src", "-j", "NETMAP", "--to", p.String()}},
			xtRule{"nat-post", []string{"-o", x.clatDev, "-s", p.String(), "-m", "set", "--match-set", set, "dst", "-j", "NETMAP", "--to", d.plat.String()}})
	}
	if len(byCLATD) > 0 {
		rs = append(rs, xtRule{"nat", []string{"!", "-i", x.clatDev, "-m", "set", "--match-set", xtHome, "dst", "-j", "NETMAP", "--to", d.own.String()}})
	}
	for _, p := range sortedPrefixes(byCLATD) {
		rs = append(rs, xtRule{"nat-post", []string{"!", "-o", x.clatDev, "-s", d.own.String(), "-m", "set", "--match-set", xtSetName('c', p), "src", "-j", "NETMAP", "--to", p.String()}})
	}
	return rs
}

func sortedPrefixes[V any](m map[netip.Prefix]V) []netip.Prefix {
	ps := make([]netip.Prefix, 0, len(m))
	for p := range m {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return ps
}

// writeRules makes l3roamd's chains hold rs, each jumped to first from its
// built-in chain: one ip6tables-restore, a transaction per table (conntrack
// keeps what a connection's first packet was given).
func (x *xtState) writeRules(rs []xtRule) error {
	chains := []xtables.Chain{
		{Table: "raw", Name: xtChain, Hook: "PREROUTING"},
		{Table: "nat", Name: xtChain, Hook: "PREROUTING"},
		{Table: "nat", Name: xtChain + "_POST", Hook: "POSTROUTING"},
	}
	for _, r := range rs {
		i := slices.Index([]string{"raw", "nat", "nat-post"}, r.table)
		chains[i].Rules = append(chains[i].Rules, r.spec)
	}
	return x.ipt.Write(chains...)
}

// destroyStaleSets removes the per-prefix sets no rule uses any more.
func destroyStaleSets(keep []string) {
	sets, err := netlink.IpsetListAll()
	if err != nil {
		return
	}
	for _, s := range sets {
		if strings.HasPrefix(s.SetName, "l3r_") && !slices.Contains(keep, s.SetName) {
			netlink.IpsetDestroy(s.SetName)
		}
	}
}

// syncHomeRoutes makes the export table route exactly homes into the CLAT
// device: babeld announces them, and the mesh sends a roamed client's
// replies here instead of to the node its address belongs to.
func (x *xtState) syncHomeRoutes(homes []netip.Addr) {
	link, err := netlink.LinkByName(x.clatDev)
	if err != nil {
		if len(homes) > 0 {
			slog.Warn("roamed clients' home routes", "err", err)
		}
		return
	}
	filter := &netlink.Route{Table: x.exportTable, LinkIndex: link.Attrs().Index, Protocol: routeProto}
	have, err := netlink.RouteListFiltered(unix.AF_INET6, filter, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_OIF|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		slog.Warn("roamed clients' home routes", "err", err)
		return
	}
	route := func(a netip.Addr) *netlink.Route {
		return &netlink.Route{LinkIndex: link.Attrs().Index, Dst: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(128, 128)},
			Table: x.exportTable, Protocol: routeProto, Priority: routeMetric}
	}
	for _, r := range have {
		if a, ok := netip.AddrFromSlice(r.Dst.IP); ok && !slices.Contains(homes, a) {
			netlink.RouteDel(&r)
		}
	}
	for _, a := range homes {
		if err := netlink.RouteReplace(route(a)); err != nil {
			slog.Warn("roamed client's home route", "ip", a, "err", err)
		}
	}
}

// cleanConntrack deletes this node's entries of the clients whose rules
// changed since the last apply: made before the rules (or for the old
// ones), they would hold the client's packets on the wrong path. The next
// packet in either direction makes the entry anew through the rules.
func (x *xtState) cleanConntrack(need map[netip.Addr]roamedHere) {
	if x.applied == nil {
		// The first apply writes what read found (a restart) or what
		// clients new here need (no rules): nothing changed for conntrack.
		return
	}
	addrs := changedClients(x.applied, need)
	if len(addrs) == 0 {
		return
	}
	c, err := conntrack.Dial(nil)
	if err != nil {
		slog.Warn("conntrack", "err", err)
		return
	}
	defer c.Close()
	// streamed: the kernel hands over its IPv6 entries a read at a time, so
	// a busy node's table is never in memory whole
	n := 0
	err = ctdump.Each(ctdump.Filter{Family: unix.AF_INET6}, func(f conntrack.Flow) {
		o := f.TupleOrig.IP
		if slices.Contains(addrs, o.SourceAddress) || slices.Contains(addrs, o.DestinationAddress) {
			if c.Delete(f) == nil {
				n++
			}
		}
	})
	if err != nil {
		slog.Warn("conntrack dump", "err", err)
	}
	if n > 0 {
		slog.Info("conntrack entries of roamed clients deleted", "entries", n)
	}
}

// changedClients lists the addresses of the clients whose rules are new,
// changed or gone: entries made under the old rules would clash with the
// new ones (the same reply tuple) or send the packets the old way.
func changedClients(before, now map[netip.Addr]roamedHere) []netip.Addr {
	var addrs []netip.Addr
	add := func(r roamedHere) {
		for _, a := range []netip.Addr{r.me, r.home} {
			if a.IsValid() && !slices.Contains(addrs, a) {
				addrs = append(addrs, a)
			}
		}
	}
	for ip4, r := range now {
		if was, ok := before[ip4]; !ok || was != r {
			add(r)
			add(was)
		}
	}
	for ip4, was := range before {
		if _, ok := now[ip4]; !ok {
			add(was)
		}
	}
	return addrs
}

// read loads the state a previous run left in the sets.
func (x *xtState) read(own netip.Prefix, now time.Time) (map[netip.Addr]xlatState, map[netip.Addr]roamed, error) {
	xlat, roams := map[netip.Addr]xlatState{}, map[netip.Addr]roamed{}
	for _, name := range []string{xtClients, xtRoams} {
		res, err := netlink.IpsetList(name)
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("ipset %s: %w", name, err)
		}
		for _, e := range res.Entries {
			a, ok := netip.AddrFromSlice(e.IP)
			if !ok || e.Timeout == nil {
				continue
			}
			exp := now.Add(time.Duration(*e.Timeout) * time.Second)
			if name == xtRoams {
				if home, err := netip.ParseAddr(e.Comment); err == nil {
					roams[home] = roamed{home: home, now: a.Unmap(), expires: exp}
				}
				continue
			}
			f := strings.Fields(e.Comment)
			if len(f) != 2 || !own.IsValid() || !own.Contains(a) {
				continue
			}
			clatd, err1 := parsePrefixOrDash(f[0])
			platc, err2 := parsePrefixOrDash(f[1])
			if err1 != nil || err2 != nil {
				continue
			}
			b := a.As16()
			xlat[netip.AddrFrom4([4]byte(b[12:]))] = xlatState{clatd: clatd, platc: platc, expires: exp}
		}
	}
	return xlat, roams, nil
}

// prefixOrDash and parsePrefixOrDash keep a prefix (or none) in an ipset
// comment, where fields are separated by spaces.
func prefixOrDash(p netip.Prefix) string {
	if !p.IsValid() {
		return "-"
	}
	return p.String()
}

func parsePrefixOrDash(s string) (netip.Prefix, error) {
	if s == "-" {
		return netip.Prefix{}, nil
	}
	return netip.ParsePrefix(s)
}

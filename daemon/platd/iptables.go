package platd

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"

	"github.com/gluon-464xlat/gluon-464xlat/internal/xtables"
)

// iptNAT is the legacy backend for firmware without nftables: the same
// ruleset as nft.go in platd's own chains, hooked into the built-in ones
// with one jump each.
//
//	ip6tables -t raw PREROUTING -> PLATD_RAW: -d PLAT::192.0.0.1 -j RETURN,
//	                                -d PLAT/96 -s CLAT_RANGE -j CT --notrack, -d PLAT/96 ICMPv6 errors -j CT --notrack,
//	                                -i plat -j CT --notrack
//	ip6tables -t filter PLATD_FWD:  -o plat -m conntrack --ctstate NEW ! -s CLAT_RANGE -j REJECT adm-prohibited
//	iptables  -t filter PLATD_FWD:  -i plat ! -s CLIENT_POOL -j DROP
//	                                -i plat NEW -p tcp ! --syn -j DROP
//	                                -i plat NEW -m connlimit --connlimit-above PORTS --connlimit-daddr -j REJECT
//	                                (per destination address: coarser than nftables' per address, protocol and port)
//	                                -i plat NEW -j PLATD_FULL   (REJECT while conntrack is nearly full)
//	iptables  -t nat POSTROUTING -> PLATD_NAT: -o WAN -s CLIENT_POOL -j CONNMARK --or-mark SESSION,
//	                                           -p tcp|udp -j SNAT --to-source WAN:PORTS (and ICMP)
type iptNAT struct {
	v4, v6 xtables.Family
	c      *config
	full   atomic.Bool
}

const (
	iptRaw  = "PLATD_RAW"
	iptFwd  = "PLATD_FWD"
	iptFull = "PLATD_FULL"
	iptNat  = "PLATD_NAT"
)

func newIPTablesNAT(c *config) (*iptNAT, error) {
	cmd := func(bin string) string {
		if c.iptablesPath == "" {
			return bin
		}
		return strings.ReplaceAll(c.iptablesPath, "iptables", bin)
	}
	return &iptNAT{v4: xtables.New(cmd("iptables")), v6: xtables.New(cmd("ip6tables")), c: c}, nil
}

// fullChain is PLATD_FULL: a REJECT while conntrack is nearly full.
func (n *iptNAT) fullChain(on bool) xtables.Chain {
	ch := xtables.Chain{Table: "filter", Name: iptFull}
	if on {
		ch.Rules = [][]string{{"-j", "REJECT", "--reject-with", "icmp-admin-prohibited"}}
	}
	return ch
}

// install writes both families' chains, each family in one transaction
// (a restart rewrites them in place: no moment without the gate).
func (n *iptNAT) install(c *config, wan netip.Addr) error {
	pool := c.clientPool.String()
	plat := c.plat.String()
	ports := fmt.Sprint(guardLimit(int(c.portMax-c.portMin) + 1))
	notrack := []string{"-j", "CT", "--notrack"}
	raw6 := xtables.Chain{Table: "raw", Name: iptRaw, Hook: "PREROUTING", Rules: [][]string{
		{"-d", c.mgmtAddr().String(), "-j", "RETURN"},
		append([]string{"-d", plat, "-s", c.clatRange.String()}, notrack...),
	}}
	for _, typ := range []string{"1", "2", "3", "4"} { // the ICMPv6 errors
		raw6.Rules = append(raw6.Rules, append([]string{"-d", plat, "-p", "ipv6-icmp", "-m", "icmp6", "--icmpv6-type", typ}, notrack...))
	}
	raw6.Rules = append(raw6.Rules, append([]string{"-i", c.Dev}, notrack...))
	fwd6 := xtables.Chain{Table: "filter", Name: iptFwd, Hook: "FORWARD", Rules: [][]string{
		{"-o", c.Dev, "-m", "conntrack", "--ctstate", "NEW", "!", "-s", c.clatRange.String(), "-j", "REJECT", "--reject-with", "icmp6-adm-prohibited"},
	}}
	fwd4 := xtables.Chain{Table: "filter", Name: iptFwd, Hook: "FORWARD", Rules: [][]string{
		{"-i", c.Dev, "!", "-s", pool, "-j", "DROP"},
		{"-i", c.Dev, "-m", "conntrack", "--ctstate", "NEW", "-p", "tcp", "!", "--syn", "-j", "DROP"},
		{"-i", c.Dev, "-m", "conntrack", "--ctstate", "NEW", "-m", "connlimit", "--connlimit-above", ports, "--connlimit-daddr", "--connlimit-mask", "32", "-j", "REJECT", "--reject-with", "icmp-admin-prohibited"},
		{"-i", c.Dev, "-m", "conntrack", "--ctstate", "NEW", "-j", iptFull},
	}}
	if c.maxSessions > 0 {
		fwd4.Rules = append(fwd4.Rules, []string{"-i", c.Dev, "-m", "conntrack", "--ctstate", "NEW", "-m", "connlimit", "--connlimit-above", fmt.Sprint(c.maxSessions), "--connlimit-mask", "0", "-j", "REJECT", "--reject-with", "icmp-admin-prohibited"})
	}
	mark := fmt.Sprintf("%#x", sessionMark)
	nat4c := xtables.Chain{Table: "nat", Name: iptNat, Hook: "POSTROUTING"}
	if wan.IsValid() {
		nat4c.Rules = append(nat4c.Rules, []string{"-o", c.wanDev, "-s", pool, "-j", "CONNMARK", "--or-mark", mark})
		// (no --random: endpoint-independent mapping, as in nft.go)
		to := fmt.Sprintf("%s:%d-%d", wan, c.portMin, c.portMax)
		for _, p := range []string{"tcp", "udp"} {
			nat4c.Rules = append(nat4c.Rules, []string{"-o", c.wanDev, "-s", pool, "-p", p, "-j", "SNAT", "--to-source", to})
		}
		nat4c.Rules = append(nat4c.Rules, []string{"-o", c.wanDev, "-s", pool, "-j", "SNAT", "--to-source", wan.String()})
	}
	if err := n.v6.Write(raw6, fwd6); err != nil {
		return err
	}
	// (an older platd's NAT66 chain, if one is left)
	n.v6.Remove(xtables.Chain{Table: "nat", Name: iptNat, Hook: "POSTROUTING"})
	return n.v4.Write(n.fullChain(n.full.Load()), fwd4, nat4c)
}

func (n *iptNAT) remove() error {
	fwd := xtables.Chain{Table: "filter", Name: iptFwd, Hook: "FORWARD"}
	nat := xtables.Chain{Table: "nat", Name: iptNat, Hook: "POSTROUTING"}
	raw := xtables.Chain{Table: "raw", Name: iptRaw, Hook: "PREROUTING"}
	return errors.Join(n.v6.Remove(raw, fwd), n.v4.Remove(fwd, n.fullChain(false), nat))
}

// counters maps the REJECT/DROP rules' packet counts onto nft.go's names.
func (n *iptNAT) counters() map[string]uint64 {
	res := map[string]uint64{}
	add := func(f xtables.Family, chain string, names ...string) {
		packets, err := f.Packets("filter", chain)
		if err != nil {
			return
		}
		for i, p := range packets {
			if i < len(names) && names[i] != "" {
				res[names[i]] += p
			}
		}
	}
	add(n.v6, iptFwd, "refused_source")
	add(n.v4, iptFwd, "refused_spoof", "dropped_midstream", "refused_ports", "", "refused_sessions")
	add(n.v4, iptFull, "refused_full")
	return res
}

func (n *iptNAT) setFull(on bool) error {
	if err := n.v4.Write(n.fullChain(on)); err != nil {
		return err
	}
	n.full.Store(on)
	return nil
}

func (n *iptNAT) isFull() bool { return n.full.Load() }

// setPortsFull is not needed: the legacy backend's guard is connlimit's.
func (n *iptNAT) setPortsFull(destKey, bool) error { return nil }

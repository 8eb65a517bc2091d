package platd

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/coreos/go-iptables/iptables"
)

// iptNAT is the legacy backend for firmware without nftables: the same
// ruleset as nft.go in platd's own chains, hooked into the built-in ones
// with one jump each.
//
//	ip6tables -t filter PLATD_FWD:  -o plat -m conntrack --ctstate NEW ! -s CLAT_RANGE -j REJECT adm-prohibited
//	iptables  -t filter PLATD_FWD:  -i plat ! -s 192.0.0.6 -j DROP
//	                                -i plat NEW -m connlimit --connlimit-above PORTS --connlimit-daddr -j REJECT
//	                                (per destination address: coarser than nftables' per address, protocol and port)
//	                                -i plat NEW -j PLATD_FULL   (REJECT while conntrack is nearly full)
//	ip6tables -t nat POSTROUTING -> PLATD_NAT: -o plat -s CLAT_RANGE -j SNAT --to-source PLAT::192.0.0.6
//	iptables  -t nat POSTROUTING -> PLATD_NAT: -o WAN -s 192.0.0.6 -p tcp|udp -j SNAT --to-source WAN:PORTS (and ICMP)
type iptNAT struct {
	v4, v6 *iptables.IPTables
	c      *config
	full   atomic.Bool
}

const (
	iptFwd  = "PLATD_FWD"
	iptFull = "PLATD_FULL"
	iptNat  = "PLATD_NAT"
)

func newIPTablesNAT(c *config) (*iptNAT, error) {
	mk := func(p iptables.Protocol, bin string) (*iptables.IPTables, error) {
		if c.iptablesPath == "" {
			return iptables.New(iptables.IPFamily(p), iptables.Timeout(5))
		}
		return iptables.New(iptables.IPFamily(p), iptables.Timeout(5),
			iptables.Path(strings.ReplaceAll(c.iptablesPath, "iptables", bin)))
	}
	v4, err := mk(iptables.ProtocolIPv4, "iptables")
	if err != nil {
		return nil, err
	}
	v6, err := mk(iptables.ProtocolIPv6, "ip6tables")
	if err != nil {
		return nil, err
	}
	return &iptNAT{v4: v4, v6: v6, c: c}, nil
}

// iptRule is one rule to append.
type iptRule struct {
	ipt          *iptables.IPTables
	table, chain string
	rule         []string
}

func (n *iptNAT) install(c *config, wan netip.Addr) error {
	n.remove()
	nat6 := c.addr6(c.natAddr4).String()
	nat4 := c.natAddr4.String()
	ports := fmt.Sprint(c.portMax - c.portMin + 1)
	steps := []iptRule{
		{n.v6, "filter", iptFwd, []string{"-o", c.Dev, "-m", "conntrack", "--ctstate", "NEW", "!", "-s", c.clatRange.String(), "-j", "REJECT", "--reject-with", "icmp6-adm-prohibited"}},
		{n.v6, "filter", iptFwd, []string{"-o", c.Dev, "-m", "conntrack", "--ctstate", "NEW", "-p", "tcp", "!", "--syn", "-j", "DROP"}},
		{n.v4, "filter", iptFwd, []string{"-i", c.Dev, "!", "-s", nat4, "-j", "DROP"}},
		{n.v4, "filter", iptFwd, []string{"-i", c.Dev, "-m", "conntrack", "--ctstate", "NEW", "-m", "connlimit", "--connlimit-above", ports, "--connlimit-daddr", "--connlimit-mask", "32", "-j", "REJECT", "--reject-with", "icmp-admin-prohibited"}},
		{n.v4, "filter", iptFwd, []string{"-i", c.Dev, "-m", "conntrack", "--ctstate", "NEW", "-j", iptFull}},
		{n.v6, "nat", iptNat, []string{"-o", c.Dev, "-s", c.clatRange.String(), "-j", "SNAT", "--to-source", nat6}},
	}
	if c.maxSessions > 0 {
		steps = append(steps, iptRule{n.v4, "filter", iptFwd, []string{"-i", c.Dev, "-m", "conntrack", "--ctstate", "NEW", "-m", "connlimit", "--connlimit-above", fmt.Sprint(c.maxSessions), "--connlimit-mask", "0", "-j", "REJECT", "--reject-with", "icmp-admin-prohibited"}})
	}
	if wan.IsValid() {
		to := fmt.Sprintf("%s:%d-%d", wan, c.portMin, c.portMax)
		for _, p := range []string{"tcp", "udp"} {
			steps = append(steps, iptRule{n.v4, "nat", iptNat, []string{"-o", c.wanDev, "-s", nat4, "-p", p, "-j", "SNAT", "--to-source", to}})
		}
		steps = append(steps, iptRule{n.v4, "nat", iptNat, []string{"-o", c.wanDev, "-s", nat4, "-j", "SNAT", "--to-source", wan.String()}})
	}
	for _, ipt := range []*iptables.IPTables{n.v4, n.v6} {
		for _, tc := range [][2]string{{"filter", iptFwd}, {"nat", iptNat}} {
			if err := ipt.NewChain(tc[0], tc[1]); err != nil {
				return err
			}
		}
	}
	if err := n.v4.NewChain("filter", iptFull); err != nil {
		return err
	}
	if n.full.Load() {
		n.v4.Append("filter", iptFull, "-j", "REJECT", "--reject-with", "icmp-admin-prohibited")
	}
	for _, s := range steps {
		if err := s.ipt.Append(s.table, s.chain, s.rule...); err != nil {
			return err
		}
	}
	// Hook in first, before the firewall's own rules.
	for _, ipt := range []*iptables.IPTables{n.v4, n.v6} {
		if err := ipt.Insert("filter", "FORWARD", 1, "-j", iptFwd); err != nil {
			return err
		}
		if err := ipt.Insert("nat", "POSTROUTING", 1, "-j", iptNat); err != nil {
			return err
		}
	}
	return nil
}

func (n *iptNAT) remove() error {
	var errs []error
	for _, ipt := range []*iptables.IPTables{n.v4, n.v6} {
		for ipt.DeleteIfExists("filter", "FORWARD", "-j", iptFwd) == nil {
			if ok, _ := ipt.Exists("filter", "FORWARD", "-j", iptFwd); !ok {
				break
			}
		}
		for ipt.DeleteIfExists("nat", "POSTROUTING", "-j", iptNat) == nil {
			if ok, _ := ipt.Exists("nat", "POSTROUTING", "-j", iptNat); !ok {
				break
			}
		}
		for _, tc := range [][2]string{{"filter", iptFwd}, {"nat", iptNat}, {"filter", iptFull}} {
			if ok, _ := ipt.ChainExists(tc[0], tc[1]); ok {
				if err := ipt.ClearAndDeleteChain(tc[0], tc[1]); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// counters maps the REJECT/DROP rules' packet counts onto nft.go's names.
func (n *iptNAT) counters() map[string]uint64 {
	res := map[string]uint64{}
	add := func(ipt *iptables.IPTables, chain string, names ...string) {
		stats, err := ipt.Stats("filter", chain)
		if err != nil {
			return
		}
		for i, s := range stats {
			if i < len(names) && names[i] != "" && len(s) > 0 {
				v, _ := strconv.ParseUint(s[0], 10, 64)
				res[names[i]] += v
			}
		}
	}
	add(n.v6, iptFwd, "refused_source", "dropped_midstream")
	add(n.v4, iptFwd, "refused_spoof", "refused_ports", "", "refused_sessions")
	add(n.v4, iptFull, "refused_full")
	return res
}

func (n *iptNAT) setFull(on bool) error {
	if err := n.v4.ClearChain("filter", iptFull); err != nil {
		return err
	}
	if on {
		if err := n.v4.Append("filter", iptFull, "-j", "REJECT", "--reject-with", "icmp-admin-prohibited"); err != nil {
			return err
		}
	}
	n.full.Store(on)
	return nil
}

func (n *iptNAT) isFull() bool { return n.full.Load() }

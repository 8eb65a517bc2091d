package clatd

import (
	"errors"
	"fmt"

	"net"

	"github.com/gluon-464xlat/gluon-464xlat/internal/cli"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// routes is what clatd put into the kernel, to take out again on exit.
type routes struct {
	link  netlink.Link
	rules []*netlink.Rule
	rts   []*netlink.Route
}

// setupRoutes installs: the CLAT /96 towards the TUN in the main table (so
// babeld can redistribute it), and an IPv4 default route in its own table
// for client traffic, selected by an ip rule. Leftovers of a previous run
// (rules survive a crash; routes die with the device) are removed first, so a
// restart never duplicates them.
func setupRoutes(c *config, link netlink.Link) (*routes, error) {
	r := &routes{link: link}
	// CLAT::192.0.0.2 is the node's own address in its CLAT prefix: the
	// source of the translator's ICMP errors and of prefixd's probes, whose
	// replies come back through the mesh on the CLAT /96. Local, it is not
	// translated (the local table wins over the /96 route into the TUN).
	own := &netlink.Addr{IPNet: &net.IPNet{IP: c.ownAddr().AsSlice(), Mask: net.CIDRMask(128, 128)}, Flags: unix.IFA_F_NODAD}
	if err := netlink.AddrReplace(link, own); err != nil {
		return nil, fmt.Errorf("address %s: %w", c.ownAddr(), err)
	}
	if c.noRoutes {
		return r, nil
	}
	cli.WarnForwarding("clients' traffic will not reach the CLAT")
	clat := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: ipNet(c.clat.String()), Protocol: unix.RTPROT_STATIC}
	def := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: ipNet("0.0.0.0/0"), Table: c.table, MTU: c.MTU - 20, Protocol: unix.RTPROT_STATIC}
	for _, rt := range []*netlink.Route{clat, def} {
		if err := netlink.RouteReplace(rt); err != nil {
			return nil, fmt.Errorf("route %s: %w", rt.Dst, err)
		}
		r.rts = append(r.rts, rt)
	}
	rule := netlink.NewRule()
	rule.Priority, rule.Table, rule.Family = c.rulePrio, c.table, unix.AF_INET
	if c.clientDev != "" {
		rule.IifName = c.clientDev
	} else {
		rule.Src = ipNet(c.clientNet.String())
		// Without -client-dev, the node's own traffic to its clients also has
		// a client-net source: let specific main-table routes win first.
		sup := netlink.NewRule()
		sup.Priority, sup.Table, sup.Family, sup.SuppressPrefixlen = c.rulePrio-1, unix.RT_TABLE_MAIN, unix.AF_INET, 0
		r.rules = append(r.rules, sup)
	}
	r.rules = append(r.rules, rule)
	for _, ru := range r.rules {
		delRule(ru)
		if err := netlink.RuleAdd(ru); err != nil {
			r.remove()
			return nil, fmt.Errorf("ip rule: %w", err)
		}
	}
	return r, nil
}

// delRule deletes every copy of a rule (a crashed run may have left some).
func delRule(ru *netlink.Rule) {
	for i := 0; i < 16 && netlink.RuleDel(ru) == nil; i++ {
	}
}

func (r *routes) remove() error {
	var errs []error
	for _, ru := range r.rules {
		delRule(ru)
	}
	for _, rt := range r.rts {
		if err := netlink.RouteDel(rt); err != nil && !errors.Is(err, unix.ESRCH) && !errors.Is(err, unix.ENODEV) {
			errs = append(errs, fmt.Errorf("route %s: %w", rt.Dst, err))
		}
	}
	return errors.Join(errs...)
}

func ipNet(s string) *net.IPNet {
	_, n, _ := net.ParseCIDR(s)
	return n
}

// Package platd is the PLAT of 464xlat on an exit node: stateful NAT64
// (RFC 6146) built from kernel parts, so the kernel's conntrack holds every
// session, in one entry:
//
//	CLAT::a.b.c.d -> PLAT::w.x.y.z                    (from the mesh, untracked)
//	  platd's TUN (siit)      -> 198.18.x.y      -> w.x.y.z
//	     (the client's own address from the client pool, RFC 7757)
//	  IPv4 SNAT on WAN, in its own port range, -> the Internet
//
// and back the same way. The seed's design (DESIGN.md section 3) put a NAT66
// to PLAT::192.0.0.6 before the TUN: a second conntrack entry per session
// (half the cost of setting one up) and one IPv4 source for all clients,
// whose colliding ports broke endpoint-independent mapping. Only sources in
// clat_range are served, special-purpose IPv4 destinations are refused with
// ICMPv6, and everything platd put in the kernel is removed on exit
// (conntrack sessions and the pool's journal stay, so a restart does not
// break them).
package platd

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/gluon-464xlat/gluon-464xlat/fastpath"
	"github.com/gluon-464xlat/gluon-464xlat/internal/addrplan"
	"github.com/gluon-464xlat/gluon-464xlat/internal/cli"
	"github.com/gluon-464xlat/gluon-464xlat/internal/clientpool"
	"github.com/gluon-464xlat/gluon-464xlat/siit"
)

type config struct {
	cli.TUN
	plat           siit.Prefix6052
	clatRange      netip.Prefix
	wanDev         string
	portMin        uint16
	portMax        uint16
	own4           netip.Addr   // the translator's own address: the pool's first but one
	clientPool     netip.Prefix // each client's IPv4 address comes from here
	clientsFile    string       // the pool's journal
	allow          []netip.Prefix
	maxSessions    uint32
	conntrackLimit int
	backend        string
	guardFilter    string // -port-guard-filter: auto or off
	iptablesPath   string
	table          string
	fastPath       fastpath.Mode
}

func parseFlags(args []string) (*config, error) {
	c := &config{fastPath: "auto"}
	fs := cli.NewTUNFlagSet("platd", "plat", "/var/run/platd.sock", "TUN MTU", &c.TUN)
	var plat, clatRange, ports, pool, allow string
	var maxSessions int
	fs.StringVar(&plat, "plat-prefix", "", "this exit's PLAT prefix (required), e.g. fddd:1337:1338:1234:5678:9abc::/96")
	fs.StringVar(&clatRange, "clat-range", "", "sources served (required): the mesh's clat_range, e.g. fddd:1337:1337::/48")
	fs.StringVar(&c.wanDev, "wan-dev", "", "uplink interface whose IPv4 address sessions are NATed to (required)")
	fs.StringVar(&ports, "port-range", "61000-65535", "IPv4 source ports for NAT64 sessions, apart from the router's own masquerading")
	fs.StringVar(&pool, "client-pool", addrplan.PLATClientPool.String(), "IPv4 prefix (/16 to /29) of the clients' addresses between the stateless step and the SNAT, used nowhere else")
	fs.StringVar(&c.clientsFile, "clients-file", "", "the client pool's journal, kept across restarts (default: the socket's path with .clients for .sock)")
	fs.StringVar(&allow, "allow", "", "comma-separated IPv4 prefixes to serve although special-purpose (e.g. a lab's 198.51.100.0/24)")
	fs.IntVar(&maxSessions, "max-sessions", 0, "refuse new IPv4 sessions (with ICMP) beyond this many; 0: no limit")
	fs.IntVar(&c.conntrackLimit, "conntrack-limit", 0, "refuse new sessions while this many conntrack entries exist; 0: 95% of nf_conntrack_max")
	fs.StringVar(&c.backend, "backend", "nftables", "kernel firewall to use: nftables, or iptables for firmware without nftables")
	fs.StringVar(&c.iptablesPath, "iptables", "", "with -backend iptables: path of the iptables binary (ip6tables is found the same way), e.g. /usr/sbin/iptables-legacy")
	fs.StringVar(&c.table, "nft-table", "platd", "name of platd's own nftables table (family inet)")
	fs.StringVar(&c.guardFilter, "port-guard-filter", "auto", "with a port range of 1024 or more: count each destination's sessions in a BPF filter on conntrack's events, auto (where the kernel allows) or off (platd counts every event)")
	fs.Var(&c.fastPath, "fastpath", "translate the common packets in the kernel (tc BPF at the TUN's egress): auto (where the kernel allows), on (or fail), off")
	if err := cli.ParseTUN(fs, &c.TUN, args, "platd -plat-prefix P -clat-range R -wan-dev IF [flags]"); err != nil {
		return nil, err
	}
	var err error
	if plat == "" || clatRange == "" || c.wanDev == "" {
		return nil, errors.New("-plat-prefix, -clat-range and -wan-dev are required")
	}
	if c.plat, err = siit.ParsePrefix6052(plat); err != nil {
		return nil, fmt.Errorf("-plat-prefix: %v", err)
	}
	if c.clatRange, err = netip.ParsePrefix(clatRange); err != nil || !c.clatRange.Addr().Is6() || c.clatRange.Addr().Is4In6() {
		return nil, fmt.Errorf("-clat-range %q: need an IPv6 prefix", clatRange)
	}
	c.clatRange = c.clatRange.Masked()
	if c.plat.Prefix().Overlaps(c.clatRange) {
		return nil, errors.New("-plat-prefix and -clat-range overlap")
	}
	if c.portMin, c.portMax, err = parsePorts(ports); err != nil {
		return nil, fmt.Errorf("-port-range %q: %v", ports, err)
	}
	c.clientPool, _ = netip.ParsePrefix(pool) // (an invalid prefix fails the check)
	if err := clientpool.CheckPrefix(c.clientPool); err != nil {
		return nil, fmt.Errorf("-client-pool %q: %v", pool, err)
	}
	c.clientPool = c.clientPool.Masked()
	c.own4 = clientpool.OwnOf(c.clientPool)
	if c.clientsFile == "" {
		c.clientsFile = strings.TrimSuffix(c.Socket, ".sock") + ".clients"
	}
	for _, a := range strings.Split(allow, ",") {
		if a = strings.TrimSpace(a); a == "" {
			continue
		}
		p, err := netip.ParsePrefix(a)
		if err != nil || !p.Addr().Is4() {
			return nil, fmt.Errorf("-allow %q: need IPv4 prefixes", a)
		}
		if p.Overlaps(c.clientPool) {
			return nil, fmt.Errorf("-allow %s overlaps -client-pool %s", p, c.clientPool)
		}
		c.allow = append(c.allow, p.Masked())
	}
	if c.backend != "nftables" && c.backend != "iptables" {
		return nil, fmt.Errorf("-backend %q: nftables or iptables", c.backend)
	}
	if c.guardFilter != "auto" && c.guardFilter != "off" {
		return nil, fmt.Errorf("-port-guard-filter %q: auto or off", c.guardFilter)
	}
	if maxSessions < 0 {
		return nil, fmt.Errorf("-max-sessions %d: must be >= 0", maxSessions)
	}
	c.maxSessions = uint32(maxSessions)
	return c, nil
}

func parsePorts(s string) (uint16, uint16, error) {
	a, b, ok := strings.Cut(s, "-")
	lo, err1 := strconv.ParseUint(a, 10, 16)
	hi, err2 := strconv.ParseUint(b, 10, 16)
	if !ok || err1 != nil || err2 != nil || lo < 1024 || hi < lo {
		return 0, 0, errors.New("need LOW-HIGH with 1024 <= LOW <= HIGH <= 65535")
	}
	return uint16(lo), uint16(hi), nil
}

// addr6 is the PLAT-prefix address that embeds v4 (RFC 6052).
func (c *config) addr6(v4 netip.Addr) netip.Addr {
	var a [16]byte
	b := v4.As4()
	c.plat.Embed(a[:], b[:])
	return netip.AddrFrom16(a)
}

// fastPathConfig is the fast path's configuration: platd's stateless step
// (the client pool, whose addresses the pool's mappings give, the PLAT
// /96, the deny list), and why
// not when the program cannot translate as the TUN path does: a PLAT prefix
// other than a /96, the Well-Known Prefix (whose non-global IPv4 rules it
// does not have), a deny list longer than its map.
func (c *config) fastPathConfig() (fastpath.Config, string) {
	p := c.plat.Prefix()
	fc := fastpath.Config{PLAT: p, ClientNet: c.clientPool, MTU6: c.MTU,
		Frag6: min(1280, c.MTU), MTU4: 0xffff, PLATMode: true, Deny: c.deny()}
	switch {
	case p.Bits() != 96 || c.plat.WellKnown():
		return fc, "the PLAT prefix is not a /96 other than 64:ff9b::/96: the fast path maps those only"
	case len(fc.Deny) > fastpath.DenyMax:
		return fc, fmt.Sprintf("-allow leaves %d prefixes to refuse: the fast path takes %d", len(fc.Deny), fastpath.DenyMax)
	}
	return fc, ""
}

// guardByEvents says whether platd counts each destination's sessions
// itself (portguard.go) rather than nftables on every new session.
func (c *config) guardByEvents() bool {
	return c.backend != "iptables" && int(c.portMax-c.portMin)+1 >= exactGuardMax
}

// translatorConfig: the PLAT prefix for the Internet's addresses, the
// client pool's mappings for the clients'; the translator's own errors and
// RFC 6791 errors come from the pool's own address, so all IPv4 that
// leaves the TUN is from the pool, covered by one SNAT rule. So do the
// exit's own ICMPv6 errors towards the PLAT prefix (Packet Too Big for a
// server's packet that the mesh link does not take): the kernel sends
// them from its address on the TUN, the management address, which an
// EAM maps onto the pool's own (through the PLAT prefix it would be
// 192.0.0.1, which nothing NATs).
func (c *config) translatorConfig(clients siit.ClientMap) siit.Config {
	mgmt := c.addr6(addrplan.PLATMgmt4)
	return siit.Config{
		Pool6: c.plat, Clients: clients, Addr4: c.own4, Pool6791: c.own4, Addr6: mgmt,
		EAMs: []siit.EAM{{V4: netip.PrefixFrom(c.own4, 32), V6: netip.PrefixFrom(mgmt, 128)}},
		MTU6: c.MTU, Deny4: c.deny(),
	}
}

// deny is what the mesh may not reach: special-purpose IPv4 space but what
// -allow serves, and the client pool (clients' addresses are not
// destinations).
func (c *config) deny() []netip.Prefix {
	d := denyList(c.allow)
	for _, p := range d {
		if p.Contains(c.clientPool.Addr()) && p.Bits() <= c.clientPool.Bits() {
			return d
		}
	}
	return append(d, c.clientPool)
}

// Main runs the daemon with args (without the program name) until SIGINT or SIGTERM.
func Main(args []string) {
	c, err := parseFlags(args)
	if err != nil {
		cli.Fail("platd", err)
	}
	d, err := start(c)
	if err != nil {
		slog.Error("platd could not start", "err", err)
		os.Exit(1)
	}
	slog.Info("platd running", "dev", c.Dev, "plat", c.plat, "clat_range", c.clatRange, "wan", c.wanDev,
		"ports", fmt.Sprintf("%d-%d", c.portMin, c.portMax), "queues", c.Queues, "backend", c.backend,
		"fastpath", d.fast.State(), "fastpath_reason", d.fastWhy)
	cli.RunTUNDaemon("platd", c.Dev, d.eng.Gone(), d.stop)
}

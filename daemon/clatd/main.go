// Package clatd is the CLAT of 464xlat (RFC 6877): it owns a TUN device and
// translates statelessly (RFC 7915) between the node's client IPv4 network
// and IPv6, mapping client a.b.c.d to CLAT_PREFIX::a.b.c.d and every other
// IPv4 address w.x.y.z to PLAT_PREFIX::w.x.y.z.
package clatd

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"

	"github.com/gluon-464xlat/gluon-464xlat/fastpath"
	"github.com/gluon-464xlat/gluon-464xlat/internal/addrplan"
	"github.com/gluon-464xlat/gluon-464xlat/internal/cli"
	"github.com/gluon-464xlat/gluon-464xlat/siit"
)

type config struct {
	cli.TUN
	clat      netip.Prefix
	plat      string
	clientNet netip.Prefix
	clientDev string
	// the fast path's devices (startFastPath): the TUN's and the clients'
	tunIndex, earlyIndex int
	table                int
	rulePrio             int
	noRoutes             bool
	lowMTU6              int
	mssClamp             bool
	eams                 eamFlag // -eam: more RFC 7757 mappings than the client network's
	fastPath             fastpath.Mode
}

// eamFlag collects repeated -eam V4PREFIX=V6PREFIX flags, each checked as
// RFC 7757 asks (siit.NewEAM).
type eamFlag []siit.EAM

func (f *eamFlag) String() string { return fmt.Sprint([]siit.EAM(*f)) }

func (f *eamFlag) Set(s string) error {
	v4s, v6s, ok := strings.Cut(s, "=")
	if !ok {
		return fmt.Errorf("%q: want V4PREFIX=V6PREFIX", s)
	}
	v4, err4 := netip.ParsePrefix(v4s)
	v6, err6 := netip.ParsePrefix(v6s)
	if err4 != nil || err6 != nil {
		return fmt.Errorf("%q: want V4PREFIX=V6PREFIX", s)
	}
	e, err := siit.NewEAM(v4, v6)
	if err != nil {
		return err
	}
	*f = append(*f, e)
	return nil
}

func parseFlags(args []string) (*config, error) {
	c := &config{fastPath: "auto"}
	fs := cli.NewTUNFlagSet("clatd", "clat", "/var/run/clatd.sock", "IPv6 MTU towards the mesh; IPv4 gets 20 bytes less", &c.TUN)
	var clat, clientNet string
	fs.StringVar(&clat, "clat-prefix", "", "this node's CLAT /96 (required), e.g. fddd:1337:1337:1234:5678:9abc::/96")
	fs.StringVar(&c.plat, "plat-prefix", "", "PLAT prefix (RFC 6052 length); may be set later over the socket")
	fs.StringVar(&clientNet, "client-net", "", "client IPv4 network (required), e.g. 10.130.0.0/16")
	fs.StringVar(&c.clientDev, "client-dev", "", "client interface (e.g. br-client): route IPv4 arriving there into the CLAT")
	fs.IntVar(&c.table, "table", 464, "routing table for the clients' IPv4 default route")
	fs.IntVar(&c.rulePrio, "rule-priority", 4640, "priority of the ip rule that selects -table")
	fs.IntVar(&c.lowMTU6, "lowest-ipv6-mtu", 1280, "IPv4 packets without DF are fragmented to fit this (RFC 7915 section 4)")
	fs.BoolVar(&c.mssClamp, "mss-clamp", true, "clamp TCP MSS in SYNs to what fits -mtu")
	fs.BoolVar(&c.noRoutes, "no-routes", false, "do not install routes and rules (an init script does)")
	fs.Var(&c.fastPath, "fastpath", "translate the common packets in the kernel (tc BPF at the TUN's egress): auto (where the kernel allows), on (or fail), off")
	fs.Var(&c.eams, "eam", "an explicit address mapping V4PREFIX=V6PREFIX (RFC 7757) besides the client network's; repeatable; routing those ranges here is up to you")
	if err := cli.ParseTUN(fs, &c.TUN, args, "clatd -clat-prefix P/96 -client-net A.B.C.D/N [flags]"); err != nil {
		return nil, err
	}
	var err error
	if clat == "" {
		return nil, errors.New("-clat-prefix is required")
	}
	if c.clat, err = netip.ParsePrefix(clat); err != nil || !c.clat.Addr().Is6() || c.clat.Bits() != 96 {
		return nil, fmt.Errorf("-clat-prefix %q: need an IPv6 /96", clat)
	}
	if clientNet == "" {
		return nil, errors.New("-client-net is required")
	}
	if c.clientNet, err = netip.ParsePrefix(clientNet); err != nil || !c.clientNet.Addr().Is4() {
		return nil, fmt.Errorf("-client-net %q: need an IPv4 prefix", clientNet)
	}
	if c.plat != "" {
		if _, err := siit.ParsePrefix6052(c.plat); err != nil {
			return nil, fmt.Errorf("-plat-prefix: %v", err)
		}
	}
	if c.table < 1 || int64(c.table) > 0xfffffff0 || c.table == 253 || c.table == 254 || c.table == 255 {
		return nil, fmt.Errorf("-table %d: not a free routing table", c.table)
	}
	return c, nil
}

// translatorConfig is the siit.Config of a CLAT: the client network maps onto
// the CLAT /96 by EAM (RFC 7757), everything else onto the PLAT prefix.
func (c *config) translatorConfig(plat string) (siit.Config, error) {
	v4 := c.clientNet.Masked()
	a := c.clat.Addr().As16()
	b := v4.Addr().As4()
	copy(a[12:], b[:])
	eam, err := siit.NewEAM(v4, netip.PrefixFrom(netip.AddrFrom16(a), 96+v4.Bits()))
	if err != nil {
		return siit.Config{}, err
	}
	sc := siit.Config{EAMs: append([]siit.EAM{eam}, c.eams...), LowestIPv6MTU: c.lowMTU6, MTU6: c.MTU}
	if c.mssClamp {
		sc.MaxMSS = c.MTU - 60
	}
	// The translator's own ICMP errors come from 192.0.0.2 / CLAT::192.0.0.2.
	sc.Addr6 = c.ownAddr()
	if plat != "" {
		p, err := siit.ParsePrefix6052(plat)
		if err != nil {
			return siit.Config{}, err
		}
		sc.Pool6 = p
	}
	return sc, nil
}

// ownAddr is CLAT::192.0.0.2, the node's address in its CLAT prefix.
func (c *config) ownAddr() netip.Addr { return addrplan.CLATOwn(c.clat) }

// Main runs the daemon with args (without the program name) until SIGINT or SIGTERM.
func Main(args []string) {
	c, err := parseFlags(args)
	if err != nil {
		cli.Fail("clatd", err)
	}
	d, err := start(c)
	if err != nil {
		slog.Error("clatd could not start", "err", err)
		os.Exit(1)
	}
	slog.Info("clatd running", "dev", c.Dev, "clat", c.clat, "plat", c.plat, "client_net", c.clientNet, "queues", c.Queues, "offload", !c.NoOffload,
		"fastpath", d.fast.State(), "fastpath_reason", d.fastWhy)
	cli.RunTUNDaemon("clatd", c.Dev, d.eng.Gone(), d.stop)
}

// Command platd is the PLAT of 464xlat on an exit node: stateful NAT64
// (RFC 6146) built from kernel parts, so the kernel's conntrack holds every
// session. The seed's design (DESIGN.md section 3):
//
//	CLAT::a.b.c.d -> PLAT::w.x.y.z                    (from the mesh)
//	  NAT66 (nftables snat)   -> PLAT::192.0.0.6 -> PLAT::w.x.y.z
//	  platd's TUN (siit)      -> 192.0.0.6       -> w.x.y.z
//	  IPv4 masquerade on WAN, in its own port range, -> the Internet
//
// and back the same way. Only sources in clat_range are served, special-
// purpose IPv4 destinations are refused with ICMPv6, and everything platd
// put in the kernel is removed on exit (conntrack sessions stay, so a
// restart does not break them).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/gluon-464xlat/gluon-464xlat/siit"
)

var version = "dev"

type config struct {
	dev            string
	plat           siit.Prefix6052
	clatRange      netip.Prefix
	wanDev         string
	portMin        uint16
	portMax        uint16
	natAddr4       netip.Addr
	allow          []netip.Prefix
	maxSessions    uint32
	conntrackLimit int
	backend        string
	iptablesPath   string
	mtu            int
	queues         int
	pinCPUs        bool
	noOffload      bool
	socket         string
	table          string
}

type usageError struct{ error }

func parseFlags(args []string) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("platd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var plat, clatRange, ports, natAddr, allow, logLevel string
	var maxSessions int
	fs.StringVar(&c.dev, "dev", "plat", "TUN device name")
	fs.StringVar(&plat, "plat-prefix", "", "this exit's PLAT prefix (required), e.g. fddd:1337:1338:1234:5678:9abc::/96")
	fs.StringVar(&clatRange, "clat-range", "", "sources served (required): the mesh's clat_range, e.g. fddd:1337:1337::/48")
	fs.StringVar(&c.wanDev, "wan-dev", "", "uplink interface to masquerade IPv4 on (required)")
	fs.StringVar(&ports, "port-range", "61000-65535", "IPv4 source ports for NAT64 sessions, apart from the router's own masquerading")
	fs.StringVar(&natAddr, "nat-addr", "192.0.0.6", "IPv4 address between the stateless step and the masquerade (RFC 7335 range)")
	fs.StringVar(&allow, "allow", "", "comma-separated IPv4 prefixes to serve although special-purpose (e.g. a lab's 198.51.100.0/24)")
	fs.IntVar(&maxSessions, "max-sessions", 0, "refuse new IPv4 sessions (with ICMP) beyond this many; 0: no limit")
	fs.IntVar(&c.conntrackLimit, "conntrack-limit", 0, "refuse new sessions while this many conntrack entries exist; 0: 95% of nf_conntrack_max")
	fs.IntVar(&c.mtu, "mtu", 1500, "TUN MTU")
	fs.IntVar(&c.queues, "queues", runtime.NumCPU(), "TUN queues (one translating goroutine each)")
	fs.BoolVar(&c.pinCPUs, "pin-cpus", runtime.NumCPU() > 1, "pin each queue's thread to one CPU")
	fs.BoolVar(&c.noOffload, "no-offload", false, "disable TUN offload (GSO/checksum)")
	fs.StringVar(&c.socket, "socket", "/var/run/platd.sock", "control socket path")
	fs.StringVar(&c.backend, "backend", "nftables", "kernel firewall to use: nftables, or iptables for firmware without nftables")
	fs.StringVar(&c.iptablesPath, "iptables", "", "with -backend iptables: path of the iptables binary (ip6tables is found the same way), e.g. /usr/sbin/iptables-legacy")
	fs.StringVar(&c.table, "nft-table", "platd", "name of platd's own nftables table (family inet)")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stdout)
			fmt.Println("usage: platd -plat-prefix P -clat-range R -wan-dev IF [flags]")
			fs.PrintDefaults()
			os.Exit(0)
		}
		return nil, usageError{err}
	}
	if *showVersion {
		fmt.Println("platd", version)
		os.Exit(0)
	}
	if fs.NArg() > 0 {
		return nil, usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	var err error
	if plat == "" || clatRange == "" || c.wanDev == "" {
		return nil, usageError{errors.New("-plat-prefix, -clat-range and -wan-dev are required")}
	}
	if c.plat, err = siit.ParsePrefix6052(plat); err != nil {
		return nil, usageError{fmt.Errorf("-plat-prefix: %v", err)}
	}
	if c.clatRange, err = netip.ParsePrefix(clatRange); err != nil || !c.clatRange.Addr().Is6() || c.clatRange.Addr().Is4In6() {
		return nil, usageError{fmt.Errorf("-clat-range %q: need an IPv6 prefix", clatRange)}
	}
	c.clatRange = c.clatRange.Masked()
	if c.plat.Prefix().Overlaps(c.clatRange) {
		return nil, usageError{errors.New("-plat-prefix and -clat-range overlap")}
	}
	if c.portMin, c.portMax, err = parsePorts(ports); err != nil {
		return nil, usageError{fmt.Errorf("-port-range %q: %v", ports, err)}
	}
	if c.natAddr4, err = netip.ParseAddr(natAddr); err != nil || !c.natAddr4.Is4() {
		return nil, usageError{fmt.Errorf("-nat-addr %q: need an IPv4 address", natAddr)}
	}
	for _, a := range strings.Split(allow, ",") {
		if a = strings.TrimSpace(a); a == "" {
			continue
		}
		p, err := netip.ParsePrefix(a)
		if err != nil || !p.Addr().Is4() {
			return nil, usageError{fmt.Errorf("-allow %q: need IPv4 prefixes", a)}
		}
		c.allow = append(c.allow, p.Masked())
	}
	if c.backend != "nftables" && c.backend != "iptables" {
		return nil, usageError{fmt.Errorf("-backend %q: nftables or iptables", c.backend)}
	}
	if maxSessions < 0 {
		return nil, usageError{fmt.Errorf("-max-sessions %d: must be >= 0", maxSessions)}
	}
	c.maxSessions = uint32(maxSessions)
	if c.mtu < 1280 || c.mtu > 65535 {
		return nil, usageError{fmt.Errorf("-mtu %d: must be 1280..65535", c.mtu)}
	}
	if c.queues < 1 || c.queues > 64 {
		return nil, usageError{fmt.Errorf("-queues %d: must be 1..64", c.queues)}
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
		return nil, usageError{fmt.Errorf("-log-level %q: %v", logLevel, err)}
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})))
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

// translatorConfig: the PLAT prefix is the only mapping (the NAT66 address
// PLAT::192.0.0.6 maps onto 192.0.0.6 by it); the translator's own errors
// and RFC 6791 errors use the NAT address too, so all IPv4 that leaves the
// TUN is covered by one masquerade rule.
func (c *config) translatorConfig() siit.Config {
	return siit.Config{
		Pool6: c.plat, Addr4: c.natAddr4, Pool6791: c.natAddr4, Addr6: c.addr6(netip.MustParseAddr("192.0.0.1")),
		MTU6: c.mtu, Deny4: denyList(c.allow),
	}
}

func main() {
	c, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "platd:", err)
		os.Exit(2)
	}
	d, err := start(c)
	if err != nil {
		slog.Error("platd could not start", "err", err)
		os.Exit(1)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	slog.Info("platd running", "dev", c.dev, "plat", c.plat, "clat_range", c.clatRange, "wan", c.wanDev,
		"ports", fmt.Sprintf("%d-%d", c.portMin, c.portMax), "queues", c.queues)
	s := <-sig
	slog.Info("platd stopping", "signal", s.String())
	if err := d.stop(); err != nil {
		slog.Error("platd stop", "err", err)
		os.Exit(1)
	}
}

// Package l3roamd lets clients roam between the nodes of a layer-3 mesh
// and keep their addresses and running connections. It speaks the C
// l3roamd's intercom protocol (package intercom) so both can share a mesh,
// does that daemon's job (learns the clients on the client bridge, holds
// their node-client IP, routes their IPv6 addresses to them) and adds
// 464xlat roaming (the seed's "l3roamd 464xlat specific roaming
// behaviour"): a roamed client's IPv4 sessions stay on the PLAT and under
// the CLAT prefix where they began.
package l3roamd

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/gluon-464xlat/gluon-464xlat/internal/cli"
)

type config struct {
	cli.Common
	socket       string
	clatdSock    string // clatd's control socket ("": do not tell clatd)
	clientDev    string
	clientBridge string // where clients' MACs are learned (-client-bridge, else clientDev)
	meshIfs      []string
	meshIfsCmd   string // prints the mesh interfaces, one a line (run at start)
	nodeIP       netip.Addr
	nodeClient   netip.Prefix
	clientNets   []netip.Prefix
	exportTable  int
	clat         netip.Prefix
	plat         netip.Prefix // initial; prefixd keeps it current
	ownPLAT      netip.Prefix // this node is an exit: accepts ROAM at ownPLAT::192.0.0.1
	clatRange    netip.Prefix
	platRange    netip.Prefix
	clatDev      string
	platDev      string
	key          []byte
	leases       string
	defaultLease time.Duration
	maxLease     time.Duration
	window       time.Duration
	table        string
	backend      string
	ip6tables    string
	maxClients   int
	maxAddrs     int
	goneGrace    time.Duration
}

type prefixList []netip.Prefix

func (l *prefixList) String() string { return fmt.Sprint([]netip.Prefix(*l)) }
func (l *prefixList) Set(s string) error {
	for _, f := range strings.Split(s, ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(f))
		if err != nil || !p.Addr().Is6() {
			return fmt.Errorf("%q: need IPv6 prefixes", f)
		}
		*l = append(*l, p.Masked())
	}
	return nil
}

func parse96(name, s string, required bool) (netip.Prefix, error) {
	if s == "" {
		if required {
			return netip.Prefix{}, fmt.Errorf("-%s is required", name)
		}
		return netip.Prefix{}, nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is6() || p.Bits() != 96 || p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("-%s %q: need an IPv6 /96", name, s)
	}
	return p, nil
}

func parse48(name, s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is6() || p.Bits() != 48 || p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("-%s %q: need an IPv6 /48", name, s)
	}
	return p, nil
}

func parseFlags(args []string) (*config, error) {
	c := &config{}
	fs := cli.NewFlagSet("l3roamd", &c.Common)
	var meshIfs, nodeIP, nodeClient, clat, plat, own, clatRange, platRange, keyFile string
	var clientNets prefixList
	fs.StringVar(&c.socket, "socket", "/var/run/l3roamd.sock", "control socket path")
	fs.StringVar(&c.clientDev, "client-dev", "br-client", "the clients' layer-3 device: their neighbours, node-client IPs, host routes (Gluon: local-node)")
	fs.StringVar(&c.clientBridge, "client-bridge", "", "the bridge whose learned MACs are the clients (default: -client-dev; Gluon: br-client)")
	fs.StringVar(&meshIfs, "mesh-ifs", "", "comma-separated mesh interfaces (SEEK multicast); more with add_meshif")
	fs.StringVar(&c.meshIfsCmd, "mesh-ifs-cmd", "", "shell command printing the mesh interfaces that are up, one a line, run at start besides -mesh-ifs (Gluon: gluon-list-mesh-interfaces; a daemon procd restarts gets the ones of now)")
	fs.StringVar(&nodeIP, "node-ip", "", "this node's own IPv6 address, the sender of intercom messages (required)")
	fs.StringVar(&nodeClient, "node-client-prefix", "", "the /64 of node-client IPs (required), e.g. fddd:1337:1:1::/64")
	fs.Var(&clientNets, "client-prefix", "IPv6 prefixes of the clients' addresses (comma-separated, repeatable)")
	fs.IntVar(&c.exportTable, "export-table", 254, "routing table for the clients' IPv6 host routes (babeld imports it)")
	fs.StringVar(&clat, "clat-prefix", "", "this node's CLAT /96 (464xlat roaming; empty: IPv6 only)")
	fs.StringVar(&plat, "plat-prefix", "", "the PLAT this node uses now (prefixd sets it with set_platprefix)")
	fs.StringVar(&own, "own-plat", "", "this node's own PLAT /96 when it is an exit: it accepts ROAM")
	fs.StringVar(&clatRange, "clat-range", "", "the mesh's clat_range /48 (with -clat-prefix or -own-plat)")
	fs.StringVar(&platRange, "plat-range", "", "the mesh's plat_range /48 (with -clat-prefix or -own-plat)")
	fs.StringVar(&c.clatDev, "clat-dev", "clat", "clatd's TUN device")
	fs.StringVar(&c.clatdSock, "clatd-socket", "/var/run/clatd.sock", "clatd's control socket: the clients that roamed here, whose packets its fast path must leave to netfilter (empty: do not tell clatd)")
	fs.StringVar(&c.platDev, "plat-dev", "plat", "platd's TUN device (with -own-plat)")
	fs.StringVar(&keyFile, "roam-key-file", "", "file with the mesh's roaming key, which signs INFO_XLAT and ROAM (required for 464xlat)")
	fs.StringVar(&c.leases, "dhcp-leases", "/tmp/dhcp.leases", "dnsmasq's lease file: a client's remaining lease")
	fs.IntVar(&c.maxClients, "max-clients", 1024, "clients served at once; more are counted (clients_cap_hit), not served")
	fs.IntVar(&c.maxAddrs, "max-client-addresses", 16, "IPv6 addresses taken per client; more are counted (addresses_cap_hit)")
	fs.DurationVar(&c.goneGrace, "client-gone-grace", time.Minute, "a client whose MAC the client bridge forgot is forgotten after this")
	fs.DurationVar(&c.defaultLease, "default-lease", time.Hour, "lease assumed for a client not in -dhcp-leases")
	fs.DurationVar(&c.maxLease, "max-lease", 7*24*time.Hour, "a ROAM with a longer lease is refused as absurd")
	fs.DurationVar(&c.window, "auth-window", 30*time.Second, "signed messages older or newer than this are refused")
	fs.StringVar(&c.table, "nft-table", "l3roamd", "name of l3roamd's own nftables table (family inet)")
	fs.StringVar(&c.backend, "backend", "nftables", "kernel firewall: nftables, or iptables (ipset + ip6tables NETMAP, for firmware without nftables)")
	fs.StringVar(&c.ip6tables, "ip6tables", "", "ip6tables binary for -backend iptables (default: from PATH)")
	if err := cli.Parse(fs, &c.Common, args, "l3roamd -node-ip A -node-client-prefix P/64 [flags]"); err != nil {
		return nil, err
	}
	if c.clientBridge == "" {
		c.clientBridge = c.clientDev
	}
	if c.maxClients < 1 || c.maxAddrs < 1 || c.goneGrace <= 0 {
		return nil, fmt.Errorf("-max-clients %d, -max-client-addresses %d, -client-gone-grace %s: need at least 1, 1 and a positive duration", c.maxClients, c.maxAddrs, c.goneGrace)
	}
	var err error
	if c.nodeIP, err = netip.ParseAddr(nodeIP); err != nil || !c.nodeIP.Is6() || c.nodeIP.Is4In6() {
		return nil, fmt.Errorf("-node-ip %q: need this node's IPv6 address", nodeIP)
	}
	if c.nodeClient, err = netip.ParsePrefix(nodeClient); err != nil || !c.nodeClient.Addr().Is6() || c.nodeClient.Bits() != 64 {
		return nil, fmt.Errorf("-node-client-prefix %q: need an IPv6 /64", nodeClient)
	}
	c.nodeClient = c.nodeClient.Masked()
	c.clientNets = clientNets
	for _, f := range strings.Split(meshIfs, ",") {
		if f = strings.TrimSpace(f); f != "" {
			c.meshIfs = append(c.meshIfs, f)
		}
	}
	if c.clat, err = parse96("clat-prefix", clat, false); err != nil {
		return nil, err
	}
	if c.plat, err = parse96("plat-prefix", plat, false); err != nil {
		return nil, err
	}
	if c.ownPLAT, err = parse96("own-plat", own, false); err != nil {
		return nil, err
	}
	if c.backend != "nftables" && c.backend != "iptables" {
		return nil, fmt.Errorf("-backend %q: nftables or iptables", c.backend)
	}
	if c.exportTable < 1 || int64(c.exportTable) > 0xfffffff0 {
		return nil, fmt.Errorf("-export-table %d: not a routing table", c.exportTable)
	}
	if c.clat.IsValid() || c.ownPLAT.IsValid() {
		if c.clatRange, err = parse48("clat-range", clatRange); err != nil {
			return nil, err
		}
		if c.platRange, err = parse48("plat-range", platRange); err != nil {
			return nil, err
		}
		if c.clat.IsValid() && !c.clatRange.Contains(c.clat.Addr()) {
			return nil, fmt.Errorf("-clat-prefix %s is not inside -clat-range %s", c.clat, c.clatRange)
		}
		if c.ownPLAT.IsValid() && !c.platRange.Contains(c.ownPLAT.Addr()) {
			return nil, fmt.Errorf("-own-plat %s is not inside -plat-range %s", c.ownPLAT, c.platRange)
		}
		if keyFile == "" {
			return nil, errors.New("-roam-key-file is required for 464xlat roaming (-clat-prefix or -own-plat)")
		}
		k, err := os.ReadFile(keyFile)
		if err != nil {
			return nil, fmt.Errorf("-roam-key-file: %v", err)
		}
		if c.key = []byte(strings.TrimSpace(string(k))); len(c.key) < 16 {
			return nil, fmt.Errorf("-roam-key-file %s: the key must be at least 16 characters", keyFile)
		}
	}
	return c, nil
}

// Main runs the daemon with args (without the program name) until SIGINT or SIGTERM.
func Main(args []string) {
	c, err := parseFlags(args)
	if err != nil {
		cli.Fail("l3roamd", err)
	}
	d, err := start(c)
	if err != nil {
		slog.Error("l3roamd could not start", "err", err)
		os.Exit(1)
	}
	slog.Info("l3roamd running", "node_ip", c.nodeIP, "client_dev", c.clientDev, "client_bridge", c.clientBridge, "mesh_ifs", strings.Join(d.meshIfNames(), ","),
		"clat", c.clat, "plat", c.plat, "own_plat", c.ownPLAT)
	slog.Info("l3roamd stopping", "signal", cli.WaitForStop().String())
	d.stop()
}

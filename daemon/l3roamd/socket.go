package l3roamd

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/gluon-464xlat/gluon-464xlat/intercom"
	"github.com/gluon-464xlat/gluon-464xlat/internal/cli"
	"github.com/gluon-464xlat/gluon-464xlat/internal/ctlsock"
	"github.com/gluon-464xlat/gluon-464xlat/internal/status"
)

// clientList is get_clients (status.Clients: the C daemon's shape).
func (d *daemon) clientList() status.Clients {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := status.Clients{}
	for _, cl := range d.clients {
		if cl.withdrawn {
			continue // gone and its routes out: not served here (its record waits for a late CLAIM)
		}
		if out.List == nil {
			out.List = map[string]status.Client{}
		}
		out.Count++
		j := status.Client{Interface: d.c.clientDev, Claiming: cl.claiming, Addresses: map[string]status.AddressState{}}
		for _, a := range cl.ip6 {
			j.Addresses[a.String()] = status.AddressState{State: status.AddressActive}
		}
		if cl.ip4.IsValid() {
			j.IPv4 = cl.ip4.String()
			j.Addresses[netip.AddrFrom16(cl.ip4.As16()).String()] = status.AddressState{State: status.AddressActive}
			if x, ok := d.xlat[cl.ip4]; ok {
				j.CLATD, j.PLATC, j.LeaseS = x.clatd.String(), x.platc.String(), int(time.Until(x.expires)/time.Second)
				j.Roamed = x.clatd != d.c.clat
			}
		}
		if len(j.Addresses) == 0 {
			j.Addresses = nil
		}
		out.List[cl.mac.String()] = j
	}
	return out
}

func one(args []string, usage string) (string, error) {
	if len(args) != 1 {
		return "", errors.New("usage: " + usage)
	}
	return args[0], nil
}

// parseUnicastMAC parses a client's MAC (an Ethernet unicast address).
func parseUnicastMAC(s string) (net.HardwareAddr, error) {
	mac, err := net.ParseMAC(s)
	if err != nil || len(mac) != 6 || mac[0]&1 == 1 {
		return nil, fmt.Errorf("%q: not a unicast MAC", s)
	}
	return mac, nil
}

func parseAddr(s string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return ip, fmt.Errorf("%q: not an address", s)
	}
	return ip, nil
}

// commands are the C l3roamd's socket commands plus the PLAT ones prefixd
// uses and status.
func (d *daemon) commands() map[string]ctlsock.Handler {
	return map[string]ctlsock.Handler{
		"status": func([]string) (any, error) {
			d.mu.Lock()
			defer d.mu.Unlock()
			counts := map[string]uint64{}
			for k, v := range d.count {
				counts[k] = v
			}
			roams := []status.Roam{}
			for _, r := range d.roams {
				roams = append(roams, status.Roam{SessionsOf: r.home.String(), NowAt: r.now.String(), LeaseLeftS: int(time.Until(r.expires) / time.Second)})
			}
			return status.L3roamd{Version: cli.Version, NodeIP: d.c.nodeIP.String(), CLATPrefix: prefixOrEmpty(d.c.clat),
				PLATPrefix: prefixOrEmpty(d.plat), OwnPLAT: prefixOrEmpty(d.c.ownPLAT), Clients: len(d.clients),
				Clients464xlat: len(d.xlat), PLATRoamed: roams, Counters: counts}, nil
		},
		"get_clients": func([]string) (any, error) { return d.clientList(), nil },
		"get_prefixes": func([]string) (any, error) {
			d.mu.Lock()
			defer d.mu.Unlock()
			// the C daemon's shape: addresses without their length (its
			// first entry, its NAT46 prefix, has no counterpart here);
			// "cidr", this daemon's own key, has them whole
			out := map[string][]string{"prefixes": {}, "cidr": {}}
			for _, p := range d.prefix6 {
				out["prefixes"] = append(out["prefixes"], p.Addr().String())
				out["cidr"] = append(out["cidr"], p.String())
			}
			return out, nil
		},
		"add_prefix": func(args []string) (any, error) {
			s, err := one(args, "add_prefix PREFIX")
			if err != nil {
				return nil, err
			}
			p, err := netip.ParsePrefix(s)
			if err != nil || !p.Addr().Is6() {
				return nil, fmt.Errorf("%q: not an IPv6 prefix", s)
			}
			d.mu.Lock()
			defer d.mu.Unlock()
			if !slices.Contains(d.prefix6, p.Masked()) {
				d.prefix6 = append(d.prefix6, p.Masked())
			}
			return "Added prefix: " + s, nil // the C daemon's reply
		},
		"del_prefix": func(args []string) (any, error) {
			s, err := one(args, "del_prefix PREFIX")
			if err != nil {
				return nil, err
			}
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("%q: not a prefix", s)
			}
			d.mu.Lock()
			defer d.mu.Unlock()
			i := slices.Index(d.prefix6, p.Masked())
			if i < 0 {
				return nil, fmt.Errorf("%s: no such prefix", p)
			}
			d.prefix6 = slices.Delete(d.prefix6, i, i+1)
			return "Deleted prefix: " + s, nil
		},
		"add_meshif": func(args []string) (any, error) {
			s, err := one(args, "add_meshif IFNAME")
			if err != nil {
				return nil, err
			}
			if err := d.addMeshIf(s); err != nil {
				return nil, err
			}
			return "", nil // the C daemon answers nothing
		},
		"del_meshif": func(args []string) (any, error) {
			s, err := one(args, "del_meshif IFNAME")
			if err != nil {
				return nil, err
			}
			d.mu.Lock()
			idx, ok := d.meshIfs[s]
			delete(d.meshIfs, s)
			d.mu.Unlock()
			if !ok {
				return nil, fmt.Errorf("%s: not a mesh interface", s)
			}
			if ifi, err := net.InterfaceByIndex(idx); err == nil {
				d.pc.LeaveGroup(ifi, &net.UDPAddr{IP: intercom.Group.AsSlice()})
			}
			return "", nil
		},
		"get_meshifs": func([]string) (any, error) {
			out := d.meshIfNames()
			// the C daemon's shape, which Gluon's gluon-l3roamd reads
			// (jsonfilter -e '@.mesh_interfaces[@]')
			return map[string][]string{"mesh_interfaces": out}, nil
		},
		"add_address": func(args []string) (any, error) {
			if len(args) != 2 {
				return nil, errors.New("usage: add_address IP MAC")
			}
			ip, err := parseAddr(args[0])
			if err != nil {
				return nil, err
			}
			mac, err := parseUnicastMAC(args[1])
			if err != nil {
				return nil, err
			}
			d.learn(mac, ip.Unmap())
			return "OK", nil
		},
		"del_address": func(args []string) (any, error) {
			if len(args) != 2 {
				return nil, errors.New("usage: del_address IP MAC")
			}
			ip, err := parseAddr(args[0])
			if err != nil {
				return nil, err
			}
			d.mu.Lock()
			defer d.mu.Unlock()
			cl, ok := d.clients[strings.ToLower(args[1])]
			if !ok {
				return nil, fmt.Errorf("%s: no such client", args[1])
			}
			cl.ip6 = slices.DeleteFunc(cl.ip6, func(a netip.Addr) bool { return a == ip })
			if cl.ip4 == ip.Unmap() {
				cl.ip4 = netip.Addr{}
			}
			return "OK", nil
		},
		"probe": func(args []string) (any, error) {
			// the C daemon's "probe IP MAC": the kernel verifies the
			// client's address (NUD_PROBE); without a MAC, this daemon's
			// own: a SEEK for it in the mesh
			if len(args) != 1 && len(args) != 2 {
				return nil, errors.New("usage: probe IP [MAC]")
			}
			ip, err := parseAddr(args[0])
			if err != nil {
				return nil, err
			}
			if len(args) == 1 {
				d.seek(ip)
				return "", nil
			}
			mac, err := parseUnicastMAC(args[1])
			if err != nil {
				return nil, err
			}
			return "", d.k.probe(ip.Unmap(), mac)
		},
		"has_route": func(args []string) (any, error) {
			s, err := one(args, "has_route IPV6")
			if err != nil {
				return nil, err
			}
			ip, err := parseAddr(s)
			if err != nil || !ip.Is6() {
				return nil, fmt.Errorf("%q: not an IPv6 address", s)
			}
			yes := "NO"
			if d.k.hasHostRoute(ip) {
				yes = "YES"
			}
			return fmt.Sprintf("found route %s/128: %s", ip, yes), nil // the C daemon's reply
		},
		"verbosity": func(args []string) (any, error) {
			s, err := one(args, "verbosity none|verbose|debug (or debug|info|warn|error)")
			if err != nil {
				return nil, err
			}
			// the C daemon's words first
			lvl, ok := map[string]slog.Level{"none": slog.LevelWarn, "verbose": slog.LevelInfo, "debug": slog.LevelDebug}[s]
			if !ok {
				if err := lvl.UnmarshalText([]byte(s)); err != nil {
					return nil, fmt.Errorf("%q: not a log level", s)
				}
			}
			cli.Level.Set(lvl)
			return "", nil
		},
		"get_platprefix": func([]string) (any, error) {
			d.mu.Lock()
			defer d.mu.Unlock()
			return prefixOrEmpty(d.plat), nil
		},
		"set_platprefix": func(args []string) (any, error) {
			s, err := one(args, "set_platprefix PREFIX/96")
			if err != nil {
				return nil, err
			}
			p, err := parse96("plat-prefix", s, true)
			if err != nil {
				return nil, err
			}
			d.mu.Lock()
			defer d.mu.Unlock()
			// Clients already here keep their PLAT (platc in their state),
			// as if they had roamed; new ones take this one, and so do
			// those left without one (their PLAT died, or none was known).
			d.plat = p
			for ip, x := range d.xlat {
				if !x.platc.IsValid() {
					x.platc = p
					d.xlat[ip] = x
				}
			}
			d.apply()
			slog.Info("PLAT for new clients", "plat", p)
			return "ok", nil
		},
		"del_platprefix": func(args []string) (any, error) {
			if len(args) > 1 {
				return nil, errors.New("usage: del_platprefix [PREFIX/96]")
			}
			d.mu.Lock()
			defer d.mu.Unlock()
			dead := d.plat
			if len(args) == 1 {
				p, err := parse96("plat-prefix", args[0], true)
				if err != nil {
					return nil, err
				}
				dead = p
			}
			if dead == d.plat {
				d.plat = netip.Prefix{}
			}
			// Sessions on a dead PLAT are gone: its clients start over on
			// the current one.
			n := 0
			for ip, x := range d.xlat {
				if x.platc == dead {
					x.platc = d.plat
					d.xlat[ip] = x
					n++
				}
			}
			d.apply()
			slog.Info("PLAT gone", "plat", dead, "clients_moved", n)
			return "ok", nil
		},
	}
}

func prefixOrEmpty(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	return p.String()
}

// seek asks the mesh who has ip (a SEEK flooded through the mesh).
func (d *daemon) seek(ip netip.Addr) {
	d.multicast(intercom.Seek(intercom.Header{TTL: floodTTL, Nonce: d.header().Nonce, Sender: d.c.nodeIP}, ip))
	d.inc("seeks_sent")
}

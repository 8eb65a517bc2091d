package platd

import (
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"

	"github.com/gluon-464xlat/gluon-464xlat/internal/ctdump"
	"github.com/gluon-464xlat/gluon-464xlat/internal/status"
	"github.com/gluon-464xlat/gluon-464xlat/internal/sysctl"
)

// A NAT64 session is one conntrack entry, the IPv4 one: from the client's
// address in the pool (clients.go) to w.x.y.z, SNATed to the uplink.

type session struct {
	CLAT     string `json:"clat"`
	Proto    uint8  `json:"proto"`
	SrcPort  uint16 `json:"sport"`
	Dst      string `json:"dst"`
	DstPort  uint16 `json:"dport"`
	WANPort  uint16 `json:"wan_port,omitempty"`
	TimeoutS uint32 `json:"timeout_s"`
}

// sessionMark is the ct mark bit platd's SNAT rule gives its sessions
// (nft.go, iptables.go), so the kernel hands over only those (ctdump).
// The other bits of the mark are left to others.
const sessionMark = 1 << 30

var marked4 = ctdump.Filter{Family: unix.AF_INET, Mark: sessionMark, Mask: sessionMark}

// summaryDumpMax bounds the conntrack table size up to which status walks
// every session: the walk streams (no more memory for a bigger table) but
// costs CPU time per entry, on every status call.
const summaryDumpMax = 20000

// eachSession calls fn with each of platd's sessions and its client (a
// session of an address whose client is unknown: none).
func (d *daemon) eachSession(fn func(f conntrack.Flow, clat netip.Addr)) error {
	return ctdump.Each(marked4, func(f conntrack.Flow) {
		if src := f.TupleOrig.IP.SourceAddress; d.c.clientPool.Contains(src) {
			clat, _ := d.pool.Lookup(src)
			fn(f, clat)
		}
	})
}

func (d *daemon) sessions(clat netip.Addr) ([]session, error) {
	res := []session{}
	err := d.eachSession(func(f conntrack.Flow, c netip.Addr) {
		o := f.TupleOrig
		if clat.IsValid() && c != clat {
			return
		}
		s := session{Proto: o.Proto.Protocol, SrcPort: o.Proto.SourcePort, Dst: o.IP.DestinationAddress.String(),
			DstPort: o.Proto.DestinationPort, TimeoutS: f.Timeout, WANPort: f.TupleReply.Proto.DestinationPort}
		if c.IsValid() {
			s.CLAT = c.String()
		}
		if s.Proto == unix.IPPROTO_ICMP { // the echo identifier; no ports
			s.SrcPort, s.DstPort, s.WANPort = o.Proto.ICMPID, 0, 0
		}
		res = append(res, s)
	})
	return res, err
}

func (d *daemon) summary() status.Sessions {
	s := status.Sessions{PerCLAT: map[string]int{}, PortsTotal: int(d.c.portMax-d.c.portMin) + 1}
	if n := sysctl.ConntrackCount(); n > summaryDumpMax {
		// the rest of the table is small on an exit
		s.Total, s.IPv4, s.PerCLAT = n, n, nil
		s.Omitted = fmt.Sprintf("%d conntrack entries: per-CLAT detail left out (use 'sessions CLAT-ADDRESS')", n)
		return s
	}
	var ports [65536 / 64]uint64 // a bit per WAN port
	d.eachSession(func(f conntrack.Flow, clat netip.Addr) {
		s.Total++
		s.IPv4++
		if clat.IsValid() {
			s.PerCLAT[clat.String()]++
		}
		if p := f.TupleReply.Proto.DestinationPort; p >= d.c.portMin && p <= d.c.portMax && ports[p/64]&(1<<(p%64)) == 0 {
			ports[p/64] |= 1 << (p % 64)
			s.PortsInUse++
		}
	})
	return s
}

// flush deletes the sessions of one CLAT address (or all).
func (d *daemon) flush(clat netip.Addr) (int, error) {
	c, err := conntrack.Dial(nil)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	n := 0
	err = d.eachSession(func(f conntrack.Flow, cl netip.Addr) {
		if (!clat.IsValid() || cl == clat) && c.Delete(f) == nil {
			n++
		}
	})
	return n, err
}

// purgeUnNATed deletes IPv4 entries from the client pool that carry no
// SNAT: they were opened while platd's rules were missing (no WAN address
// yet, a firewall flushing the legacy chains) and would hold their flows
// un-NATed until they time out. Deleted, the next packet opens a proper
// session. The kernel hands over only entries without the session mark.
func (d *daemon) purgeUnNATed() {
	c, err := conntrack.Dial(nil)
	if err != nil {
		return
	}
	defer c.Close()
	n := 0
	ctdump.Each(ctdump.Filter{Family: unix.AF_INET, Mask: sessionMark}, func(f conntrack.Flow) {
		if d.c.clientPool.Contains(f.TupleOrig.IP.SourceAddress) && !f.Status.SrcNAT() && c.Delete(f) == nil {
			n++
		}
	})
	if n > 0 {
		slog.Info("deleted conntrack entries opened without SNAT", "entries", n)
	}
}

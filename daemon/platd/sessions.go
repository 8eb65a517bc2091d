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

// A NAT64 session is two conntrack entries: the IPv6 one (CLAT address ->
// PLAT::w.x.y.z, NAT66 to PLAT::192.0.0.6) and the IPv4 one (192.0.0.6 ->
// w.x.y.z, masqueraded). They are joined by the NAT66 source port.

type session struct {
	CLAT     string `json:"clat"`
	Proto    uint8  `json:"proto"`
	SrcPort  uint16 `json:"sport"`
	Dst      string `json:"dst"`
	DstPort  uint16 `json:"dport"`
	WANPort  uint16 `json:"wan_port,omitempty"`
	TimeoutS uint32 `json:"timeout_s"`
}

// sessionMark is the ct mark bit platd's NAT rules give both entries of a
// session (nft.go, iptables.go), so the kernel hands over only those
// (ctdump). The other bits of the mark are left to others.
const sessionMark = 1 << 30

var (
	marked6 = ctdump.Filter{Family: unix.AF_INET6, Mark: sessionMark, Mask: sessionMark}
	marked4 = ctdump.Filter{Family: unix.AF_INET, Mark: sessionMark, Mask: sessionMark}
)

// summaryDumpMax bounds the conntrack table size up to which status walks
// every session: the walk streams (no more memory for a bigger table) but
// costs CPU time per entry, on every status call.
const summaryDumpMax = 20000

// natKey joins a session's two entries: the IPv4 protocol and the NAT66
// source port (which the IPv4 entry has as its source port).
type natKey struct {
	proto uint8
	port  uint16
}

// key6 is the IPv4 entry's natKey of an IPv6 entry (ICMPv6 became ICMP).
func key6(f conntrack.Flow) natKey {
	p := f.TupleOrig.Proto.Protocol
	if p == unix.IPPROTO_ICMPV6 {
		p = unix.IPPROTO_ICMP
	}
	return natKey{p, f.TupleReply.Proto.DestinationPort}
}

// key4 is an IPv4 entry's natKey.
func key4(f conntrack.Flow) natKey {
	return natKey{f.TupleOrig.Proto.Protocol, f.TupleOrig.Proto.SourcePort}
}

// ours reports an IPv6 entry of CLAT traffic into the PLAT prefix.
func (d *daemon) ours(f conntrack.Flow) bool {
	o := f.TupleOrig.IP
	return d.c.clatRange.Contains(o.SourceAddress) && d.c.plat.Prefix().Contains(o.DestinationAddress)
}

func (d *daemon) sessions(clat netip.Addr) ([]session, error) {
	wanPort := map[natKey]uint16{}
	err := ctdump.Each(marked4, func(f conntrack.Flow) {
		if f.TupleOrig.IP.SourceAddress == d.c.natAddr4 {
			wanPort[key4(f)] = f.TupleReply.Proto.DestinationPort
		}
	})
	if err != nil {
		return nil, err
	}
	res := []session{}
	err = ctdump.Each(marked6, func(f conntrack.Flow) {
		o := f.TupleOrig
		if !d.ours(f) || clat.IsValid() && o.IP.SourceAddress != clat {
			return
		}
		s := session{CLAT: o.IP.SourceAddress.String(), Proto: o.Proto.Protocol, SrcPort: o.Proto.SourcePort,
			DstPort: o.Proto.DestinationPort, TimeoutS: f.Timeout, WANPort: wanPort[key6(f)]}
		var w [4]byte
		b := o.IP.DestinationAddress.As16()
		if d.c.plat.Extract(w[:], b[:]) {
			s.Dst = netip.AddrFrom4(w).String()
		}
		res = append(res, s)
	})
	return res, err
}

func (d *daemon) summary() status.Sessions {
	s := status.Sessions{PerCLAT: map[string]int{}, PortsTotal: int(d.c.portMax-d.c.portMin) + 1}
	if n := sysctl.ConntrackCount(); n > summaryDumpMax {
		// Each NAT64 session is two entries; the rest of the table is small on an exit.
		s.Total, s.PerCLAT = n/2, nil
		s.Omitted = fmt.Sprintf("%d conntrack entries: per-CLAT detail left out (use 'sessions CLAT-ADDRESS')", n)
		return s
	}
	err := ctdump.Each(marked6, func(f conntrack.Flow) {
		if d.ours(f) {
			s.Total++
			s.PerCLAT[f.TupleOrig.IP.SourceAddress.String()]++
		}
	})
	if err != nil {
		return s
	}
	var ports [65536 / 64]uint64 // a bit per WAN port
	ctdump.Each(marked4, func(f conntrack.Flow) {
		if f.TupleOrig.IP.SourceAddress != d.c.natAddr4 {
			return
		}
		s.IPv4++
		if p := f.TupleReply.Proto.DestinationPort; p >= d.c.portMin && p <= d.c.portMax && ports[p/64]&(1<<(p%64)) == 0 {
			ports[p/64] |= 1 << (p % 64)
			s.PortsInUse++
		}
	})
	return s
}

// flush deletes the sessions of one CLAT address (or all): both entries.
func (d *daemon) flush(clat netip.Addr) (int, error) {
	c, err := conntrack.Dial(nil)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	n := 0
	gone := map[natKey]bool{}
	err = ctdump.Each(marked6, func(f conntrack.Flow) {
		if !d.ours(f) || clat.IsValid() && f.TupleOrig.IP.SourceAddress != clat {
			return
		}
		if c.Delete(f) == nil {
			n++
			gone[key6(f)] = true
		}
	})
	if err != nil {
		return n, err
	}
	err = ctdump.Each(marked4, func(f conntrack.Flow) {
		if f.TupleOrig.IP.SourceAddress == d.c.natAddr4 && gone[key4(f)] {
			c.Delete(f)
		}
	})
	return n, err
}

// purgeUnNATed deletes IPv6 entries of CLAT traffic into the PLAT prefix
// that carry no NAT66: they were opened while platd's rules were missing
// (an older platd stopping in the wrong order, a firewall flushing the
// legacy chains) and would hold their flows in the translator's drop until
// they time out. Deleted, the next packet opens a proper session. The
// kernel hands over only IPv6 entries without the session mark.
func (d *daemon) purgeUnNATed() {
	c, err := conntrack.Dial(nil)
	if err != nil {
		return
	}
	defer c.Close()
	n, mgmt := 0, d.c.mgmtAddr()
	ctdump.Each(ctdump.Filter{Family: unix.AF_INET6, Mask: sessionMark}, func(f conntrack.Flow) {
		if !d.ours(f) || f.TupleOrig.IP.DestinationAddress == mgmt {
			return // not ours, or delivered here and never NATed: prefixd's probes, l3roamd's ROAMs
		}
		if !f.Status.SrcNAT() && c.Delete(f) == nil {
			n++
		}
	})
	if n > 0 {
		slog.Info("deleted conntrack entries opened without NAT66", "entries", n)
	}
}

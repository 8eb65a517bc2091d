package platd

import (
	"fmt"
	"log/slog"
	"net/netip"
	"runtime/debug"

	"github.com/ti-mo/conntrack"

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

// summaryDumpMax bounds the conntrack table size up to which status reads
// every entry: the dump holds them all in memory at once (about 1 KiB each),
// which a busy exit on a small router cannot afford on every status call.
const summaryDumpMax = 20000

// dump returns the IPv6 sessions (optionally of one CLAT address) and the
// IPv4 entries of the NAT address, keyed by protocol and NAT66 source port.
func (d *daemon) dump() (v6 []conntrack.Flow, v4 map[[2]uint16]conntrack.Flow, err error) {
	c, err := conntrack.Dial(nil)
	if err != nil {
		return nil, nil, err
	}
	defer c.Close()
	flows, err := c.Dump(nil)
	if err != nil {
		return nil, nil, err
	}
	v4 = map[[2]uint16]conntrack.Flow{}
	plat := d.c.plat.Prefix()
	for _, f := range flows {
		o := f.TupleOrig
		switch {
		case o.IP.SourceAddress.Is6() && d.c.clatRange.Contains(o.IP.SourceAddress) && plat.Contains(o.IP.DestinationAddress):
			v6 = append(v6, f)
		case o.IP.SourceAddress == d.c.natAddr4:
			v4[[2]uint16{uint16(o.Proto.Protocol), o.Proto.SourcePort}] = f
		}
	}
	return v6, v4, nil
}

func (d *daemon) sessions(clat netip.Addr) ([]session, error) {
	v6, v4, err := d.dump()
	if err != nil {
		return nil, err
	}
	res := []session{}
	for _, f := range v6 {
		o := f.TupleOrig
		if clat.IsValid() && o.IP.SourceAddress != clat {
			continue
		}
		s := session{CLAT: o.IP.SourceAddress.String(), Proto: o.Proto.Protocol, SrcPort: o.Proto.SourcePort,
			DstPort: o.Proto.DestinationPort, TimeoutS: f.Timeout}
		var w [4]byte
		b := o.IP.DestinationAddress.As16()
		if d.c.plat.Extract(w[:], b[:]) {
			s.Dst = netip.AddrFrom4(w).String()
		}
		proto := uint16(o.Proto.Protocol)
		if proto == 58 {
			proto = 1
		}
		if f4, ok := v4[[2]uint16{proto, f.TupleReply.Proto.DestinationPort}]; ok {
			s.WANPort = f4.TupleReply.Proto.DestinationPort
		}
		res = append(res, s)
	}
	return res, nil
}

func (d *daemon) summary() status.Sessions {
	s := status.Sessions{PerCLAT: map[string]int{}, PortsTotal: int(d.c.portMax-d.c.portMin) + 1}
	if n := sysctl.ConntrackCount(); n > summaryDumpMax {
		// Each NAT64 session is two entries; the rest of the table is small on an exit.
		s.Total, s.PerCLAT = n/2, nil
		s.Omitted = fmt.Sprintf("%d conntrack entries: per-CLAT detail left out (use 'sessions CLAT-ADDRESS')", n)
		return s
	}
	defer debug.FreeOSMemory() // hand the dump's memory back at once
	v6, v4, err := d.dump()
	if err != nil {
		return s
	}
	s.Total, s.IPv4 = len(v6), len(v4)
	ports := map[uint16]bool{}
	for _, f := range v6 {
		s.PerCLAT[f.TupleOrig.IP.SourceAddress.String()]++
	}
	for _, f := range v4 {
		if p := f.TupleReply.Proto.DestinationPort; p >= d.c.portMin && p <= d.c.portMax {
			ports[p] = true
		}
	}
	s.PortsInUse = len(ports)
	return s
}

// flush deletes the sessions of one CLAT address (or all): both entries.
func (d *daemon) flush(clat netip.Addr) (int, error) {
	v6, v4, err := d.dump()
	if err != nil {
		return 0, err
	}
	c, err := conntrack.Dial(nil)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	n := 0
	for _, f := range v6 {
		if clat.IsValid() && f.TupleOrig.IP.SourceAddress != clat {
			continue
		}
		proto := uint16(f.TupleOrig.Proto.Protocol)
		if proto == 58 {
			proto = 1
		}
		if f4, ok := v4[[2]uint16{proto, f.TupleReply.Proto.DestinationPort}]; ok {
			c.Delete(f4)
		}
		if c.Delete(f) == nil {
			n++
		}
	}
	return n, nil
}

// purgeUnNATed deletes IPv6 entries of CLAT traffic into the PLAT prefix
// that carry no NAT66: they were opened while platd's rules were missing
// (an older platd stopping in the wrong order, a firewall flushing the
// legacy chains) and would hold their flows in the translator's drop until
// they time out. Deleted, the next packet opens a proper session. Skipped
// on a table too large to dump cheaply.
func (d *daemon) purgeUnNATed() {
	if sysctl.ConntrackCount() > summaryDumpMax {
		return
	}
	defer debug.FreeOSMemory()
	v6, _, err := d.dump()
	if err != nil {
		return
	}
	c, err := conntrack.Dial(nil)
	if err != nil {
		return
	}
	defer c.Close()
	n, mgmt := 0, d.c.mgmtAddr()
	for _, f := range v6 {
		if f.TupleOrig.IP.DestinationAddress == mgmt {
			continue // delivered here, never NATed: prefixd's probes, l3roamd's ROAMs
		}
		if !f.Status.SrcNAT() && c.Delete(f) == nil {
			n++
		}
	}
	if n > 0 {
		slog.Info("deleted conntrack entries opened without NAT66", "entries", n)
	}
}

package prefixd

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/gluon-464xlat/gluon-464xlat/internal/addrplan"
)

// ICMPv6 echo (RFC 4443 section 4), written by hand: an echo is eight bytes
// and the kernel checksums a raw ICMPv6 socket's messages itself, which did
// not pay for golang.org/x/net/icmp (63 KiB of MIPS code with x/net/ipv6).
const (
	echoRequest = 128
	echoReply   = 129
)

// prober sends ICMPv6 echo requests to PLAT::192.0.0.1 of every candidate,
// one round per interval, and keeps each one's consecutive failures.
type prober struct {
	src     netip.Addr // the probes' source (clatd's CLAT::192.0.0.2); invalid: any
	timeout time.Duration

	mu    sync.Mutex
	state map[netip.Prefix]probeState
	seq   uint16
}

type probeState struct {
	probed bool
	ok     bool
	fails  int
	rtt    time.Duration
}

// mgmtAddr is PLAT::192.0.0.1.
func mgmtAddr(p netip.Prefix) netip.Addr { return addrplan.PLATMgmt(p) }

// round probes the given PLATs once and waits up to the timeout.
func (pr *prober) round(plats []netip.Prefix) error {
	laddr := "::"
	if pr.src.IsValid() {
		laddr = pr.src.String()
	}
	c, err := net.ListenPacket("ip6:ipv6-icmp", laddr)
	if err != nil {
		return err
	}
	defer c.Close()
	id := os.Getpid() & 0xffff
	sent := map[int]netip.Prefix{}
	start := map[int]time.Time{}
	for _, p := range plats {
		pr.mu.Lock()
		pr.seq++
		seq := int(pr.seq)
		pr.mu.Unlock()
		b := append([]byte{echoRequest, 0, 0, 0, 0, 0, 0, 0}, "prefixd"...)
		binary.BigEndian.PutUint16(b[4:], uint16(id))
		binary.BigEndian.PutUint16(b[6:], uint16(seq))
		start[seq] = time.Now()
		if _, err := c.WriteTo(b, &net.IPAddr{IP: mgmtAddr(p).AsSlice()}); err == nil {
			sent[seq] = p
		}
	}
	answered := map[netip.Prefix]time.Duration{}
	deadline := time.Now().Add(pr.timeout)
	buf := make([]byte, 1500)
	for len(answered) < len(sent) && time.Now().Before(deadline) {
		c.SetReadDeadline(deadline)
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			break
		}
		if n < 8 || buf[0] != echoReply || int(binary.BigEndian.Uint16(buf[4:])) != id {
			continue
		}
		if seq := int(binary.BigEndian.Uint16(buf[6:])); sent[seq].IsValid() {
			answered[sent[seq]] = time.Since(start[seq])
		}
	}
	pr.mu.Lock()
	defer pr.mu.Unlock()
	next := map[netip.Prefix]probeState{}
	for _, p := range plats {
		st := pr.state[p]
		st.probed = true
		if rtt, ok := answered[p]; ok {
			st.ok, st.fails, st.rtt = true, 0, rtt
		} else {
			st.ok = false
			st.fails++
		}
		next[p] = st
	}
	pr.state = next
	return nil
}

func (pr *prober) get(p netip.Prefix) probeState {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return pr.state[p]
}

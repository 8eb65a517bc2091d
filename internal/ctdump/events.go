package ctdump

import (
	"errors"
	"fmt"
	"sync"
	"time"
	"unsafe"

	"encoding/binary"
	"golang.org/x/sys/unix"
	"net/netip"
)

// Event kinds Watch reports.
const (
	New     = 1 // IPCTNL_MSG_CT_NEW with NLM_F_CREATE: the entry was confirmed
	Destroy = 2 // IPCTNL_MSG_CT_DELETE: the entry is gone
)

// eventBuf is the socket's receive buffer: about 40 000 events of ~200
// bytes, a second of session set-ups at full rate on a busy exit.
const eventBuf = 8 << 20

// readEvery is the pause once the socket is empty: the events of a busy
// exit pile up that long and are read one after the other, instead of
// each waking this process (perf in bench-plat's session rounds: the
// kernel's wake-ups cost about a third of what the events cost in all).
const readEvery = 2 * time.Millisecond

// Watch reports every new and destroyed conntrack entry of one address
// family to fn, until done is closed. A filter (not nil) attaches a socket
// filter of the caller's that lets only a few events through (they are
// then read at once, without the pause); nil: the family's every event.
// subscribed runs once the socket has
// joined the groups, before the first event is read, so a caller can count
// from a dump without a gap; lost runs when the kernel dropped events
// because the reader fell behind (ENOBUFS: whoever counts from them must
// count again), and the reading goes on. The socket loop and the parsing
// are by hand: a busy exit has tens of thousands of events a second, and
// ti-mo/conntrack's Listen decodes each into a whole Flow (about 1 KiB of
// garbage per event, measured as 4 MiB more RSS in platd) and hands it
// over a channel.
func Watch(family uint8, filter func(fd int) error, done <-chan struct{}, subscribed, lost func(), fn func(kind int, e Entry)) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return fmt.Errorf("conntrack events: %w", err)
	}
	defer unix.Close(fd)
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, eventBuf) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, eventBuf)
	}
	// The kernel builds every event; the filter keeps the other family's
	// out of the socket buffer (and out of this process).
	pause := time.Duration(0)
	if filter == nil {
		filter = func(fd int) error { return attachFamilyFilter(fd, family) }
		pause = readEvery
	}
	if err := filter(fd); err != nil {
		return fmt.Errorf("conntrack events: %w", err)
	}
	// Read without blocking until the socket is empty, then pause and poll.
	if err := unix.SetNonblock(fd, true); err != nil {
		return fmt.Errorf("conntrack events: %w", err)
	}
	groups := uint32(1<<(unix.NFNLGRP_CONNTRACK_NEW-1) | 1<<(unix.NFNLGRP_CONNTRACK_DESTROY-1))
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: groups}); err != nil {
		return fmt.Errorf("conntrack events: %w", err)
	}
	// done wakes the poll below at once (a daemon's stop waits for this)
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return fmt.Errorf("conntrack events: %w", err)
	}
	stopped := make(chan struct{})
	var waker sync.WaitGroup
	waker.Add(1)
	go func() {
		defer waker.Done()
		select {
		case <-done:
			unix.Write(wake, []byte{1, 0, 0, 0, 0, 0, 0, 1}) // any byte order: not 0
		case <-stopped:
		}
	}()
	defer func() { close(stopped); waker.Wait(); unix.Close(wake) }()
	if subscribed != nil {
		subscribed()
	}
	buf := make([]byte, 64<<10)
	for {
		select {
		case <-done:
			return nil
		default:
		}
		n, err := unix.Read(fd, buf) // not Recvfrom: that allocates the sender's address each time
		switch {
		case errors.Is(err, unix.EAGAIN):
			// a pause for a busy exit's events to pile up, then wait for
			// the next or for done
			time.Sleep(pause)
			unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(wake), Events: unix.POLLIN}}, -1)
			continue
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ENOBUFS):
			lost()
			continue
		case err != nil:
			return fmt.Errorf("conntrack events: %w", err)
		}
		// Each message by hand, not syscall.ParseNetlinkMessage: that
		// allocates per read, and garbage at the event rate alone grows
		// the heap to the collector's 4 MiB minimum.
		for b := buf[:n]; len(b) >= unix.NLMSG_HDRLEN; {
			l := int(binary.NativeEndian.Uint32(b))
			if l < unix.NLMSG_HDRLEN || l > len(b) {
				break
			}
			typ, flags := binary.NativeEndian.Uint16(b[4:]), binary.NativeEndian.Uint16(b[6:])
			kind := New
			if typ&0xff == ctDelete {
				kind = Destroy
			} else if typ&0xff != ctNew || flags&unix.NLM_F_CREATE == 0 {
				kind = 0 // an update of an entry already reported
			}
			if e, ok := parseEntry(b[unix.NLMSG_HDRLEN:l]); ok && kind != 0 {
				fn(kind, e)
			}
			b = b[min((l+3)&^3, len(b)):]
		}
	}
}

// Message types of ctnetlink (linux/netfilter/nfnetlink_conntrack.h).
const (
	ctNew    = 0 // IPCTNL_MSG_CT_NEW
	ctDelete = 2 // IPCTNL_MSG_CT_DELETE
)

// attachFamilyFilter lets only messages of one address family into the
// socket: the nfgenmsg's family byte follows the 16-byte netlink header.
func attachFamilyFilter(fd int, family uint8) error {
	prog := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_B | unix.BPF_ABS, K: 16},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: uint32(family)},
		{Code: unix.BPF_RET | unix.BPF_K, K: 0xffffffff},
		{Code: unix.BPF_RET | unix.BPF_K, K: 0},
	}
	fp := unix.SockFprog{Len: uint16(len(prog)), Filter: (*unix.SockFilter)(unsafe.Pointer(&prog[0]))}
	return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fp)
}

// Entry is what Watch reports of an entry: its original tuple and mark.
type Entry struct {
	Src, Dst         netip.Addr
	Proto            uint8
	SrcPort, DstPort uint16 // ICMP: the echo identifier in SrcPort
	Mark             uint32
}

// Attributes of ctnetlink (linux/netfilter/nfnetlink_conntrack.h).
const (
	ctaTupleOrig  = 1
	ctaTupleIP    = 1
	ctaTupleProto = 2
	ctaIPv4Src    = 1
	ctaIPv4Dst    = 2
	ctaIPv6Src    = 3
	ctaIPv6Dst    = 4
	ctaProtoNum   = 1
	ctaProtoSrc   = 2
	ctaProtoDst   = 3
	ctaProtoICMPI = 4
)

// parseEntry reads the original tuple and the mark of a ctnetlink message
// (after the 4-byte nfgenmsg), without allocating.
func parseEntry(b []byte) (Entry, bool) {
	var e Entry
	if len(b) < 4 {
		return e, false
	}
	ok := false
	eachAttr(b[4:], func(typ uint16, v []byte) {
		switch typ {
		case ctaTupleOrig:
			ok = true
			eachAttr(v, func(typ uint16, v []byte) {
				switch typ {
				case ctaTupleIP:
					eachAttr(v, func(typ uint16, v []byte) {
						switch {
						case typ == ctaIPv4Src && len(v) == 4:
							e.Src = netip.AddrFrom4([4]byte(v))
						case typ == ctaIPv4Dst && len(v) == 4:
							e.Dst = netip.AddrFrom4([4]byte(v))
						case typ == ctaIPv6Src && len(v) == 16:
							e.Src = netip.AddrFrom16([16]byte(v))
						case typ == ctaIPv6Dst && len(v) == 16:
							e.Dst = netip.AddrFrom16([16]byte(v))
						}
					})
				case ctaTupleProto:
					eachAttr(v, func(typ uint16, v []byte) {
						switch {
						case typ == ctaProtoNum && len(v) >= 1:
							e.Proto = v[0]
						case (typ == ctaProtoSrc || typ == ctaProtoICMPI) && len(v) >= 2:
							e.SrcPort = binary.BigEndian.Uint16(v)
						case typ == ctaProtoDst && len(v) >= 2:
							e.DstPort = binary.BigEndian.Uint16(v)
						}
					})
				}
			})
		case ctaMark:
			if len(v) >= 4 {
				e.Mark = binary.BigEndian.Uint32(v)
			}
		}
	})
	return e, ok && e.Src.IsValid() && e.Dst.IsValid()
}

// eachAttr calls fn with the type (flags cleared) and value of each
// netlink attribute in b; a truncated one ends the walk.
func eachAttr(b []byte, fn func(typ uint16, v []byte)) {
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b))
		if l < 4 || l > len(b) {
			return
		}
		fn(binary.NativeEndian.Uint16(b[2:])&^(unix.NLA_F_NESTED|unix.NLA_F_NET_BYTEORDER), b[4:l])
		l = (l + 3) &^ 3
		if l > len(b) {
			return
		}
		b = b[l:]
	}
}

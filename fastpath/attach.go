package fastpath

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"github.com/gluon-464xlat/gluon-464xlat/internal/bpfload"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// filterName names the classifier, so that a restarted clatd finds and
// replaces the one a killed clatd left (the TUN device usually dies with
// its owner; a persistent one keeps its qdisc).
const filterName = "clat_egress"

// Attach puts the program at the egress of the device (a clsact qdisc and
// a direct-action BPF filter), replacing any earlier one.
func (p *Program) Attach(ifindex int) error {
	q := &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: ifindex, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT},
		QdiscType:  "clsact",
	}
	if err := netlink.QdiscReplace(q); err != nil {
		return fmt.Errorf("clsact qdisc: %w", err)
	}
	f := &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{LinkIndex: ifindex, Parent: netlink.HANDLE_MIN_EGRESS, Handle: 1,
			Protocol: unix.ETH_P_ALL, Priority: 1},
		Fd: p.fd, Name: filterName, DirectAction: true,
	}
	if err := netlink.FilterReplace(f); err != nil {
		return fmt.Errorf("BPF filter: %w", err)
	}
	p.attached = ifindex
	return nil
}

// earlyName and earlyPrio name the filter at the clients' device's
// ingress: a device clatd shares, so its own filter is replaced and
// removed, never the qdisc with anyone else's.
const (
	earlyName = "clat_early"
	earlyPrio = 0xc1a7
)

// AttachEarly puts the program also at the ingress of the clients'
// device (an Ethernet device), where it sends UDP and ICMP echo that
// the kernel would forward to the TUN straight on (Config.Direct) and
// lets everything else pass; the configuration's EarlyIndex must name it.
func (p *Program) AttachEarly(ifindex int) error {
	q := &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: ifindex, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT},
		QdiscType:  "clsact",
	}
	if err := netlink.QdiscAdd(q); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("clsact qdisc: %w", err)
	}
	if err := netlink.FilterReplace(p.earlyFilter(ifindex)); err != nil {
		return fmt.Errorf("BPF filter: %w", err)
	}
	p.early = ifindex
	return nil
}

func (p *Program) earlyFilter(ifindex int) *netlink.BpfFilter {
	return &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{LinkIndex: ifindex, Parent: netlink.HANDLE_MIN_INGRESS, Handle: 1,
			Protocol: unix.ETH_P_IP, Priority: earlyPrio},
		Fd: p.fd, Name: earlyName, DirectAction: true,
	}
}

// DetachEarly removes the filter of a clatd that is gone (killed, its
// device index known from a previous run): none left, no error.
func DetachEarly(ifindex int) error {
	f := (&Program{fd: -1}).earlyFilter(ifindex)
	if err := netlink.FilterDel(f); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("BPF filter: %w", err)
	}
	return nil
}

// detach removes the clsact qdisc, and the filter with it.
func detach(ifindex int) error {
	q := &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: ifindex, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT},
		QdiscType:  "clsact",
	}
	if err := netlink.QdiscDel(q); err != nil && err != unix.ENODEV && err != unix.EINVAL && err != unix.ENOENT {
		return fmt.Errorf("clsact qdisc: %w", err)
	}
	return nil
}

// TestRun runs the program once on a packet (BPF_PROG_TEST_RUN, which
// wants an Ethernet header first: Config.L3Offset 14), as a GSO packet of
// segments of gsoSize bytes unless 0, and returns its verdict and the
// packet as the program left it.
func (p *Program) TestRun(pkt []byte, gsoSize int) (verdict uint32, out []byte, err error) {
	return p.TestRunOn(0, pkt, gsoSize)
}

// TestRunOn is TestRun as if the packet left through the device ifindex
// of this network namespace (0: its loopback device).
func (p *Program) TestRunOn(ifindex int, pkt []byte, gsoSize int) (verdict uint32, out []byte, err error) {
	verdict, out, _, err = p.testRunTimed(ifindex, pkt, gsoSize)
	return verdict, out, err
}

// testRunTimed is TestRunOn that also returns the kernel's time for the
// run in ns (for benchmarks: the interpreter against the JIT).
func (p *Program) testRunTimed(ifindex int, pkt []byte, gsoSize int) (verdict uint32, out []byte, ns uint32, err error) {
	out = make([]byte, len(pkt)+256)
	var ctx [192]byte // struct __sk_buff
	binary.NativeEndian.PutUint32(ctx[40:], uint32(ifindex))
	binary.NativeEndian.PutUint32(ctx[176:], uint32(gsoSize))
	attr := struct {
		fd, retval, sizeIn, sizeOut uint32
		in, out                     uint64
		repeat, duration            uint32
		ctxSizeIn, ctxSizeOut       uint32
		ctxIn, ctxOut               uint64
	}{fd: uint32(p.fd), sizeIn: uint32(len(pkt)), sizeOut: uint32(len(out)),
		in: uint64(uintptr(unsafe.Pointer(&pkt[0]))), out: uint64(uintptr(unsafe.Pointer(&out[0]))), repeat: 1,
		ctxSizeIn: uint32(len(ctx)), ctxIn: uint64(uintptr(unsafe.Pointer(&ctx[0])))}
	_, err = bpfload.Syscall(unix.BPF_PROG_TEST_RUN, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	runtime.KeepAlive(pkt)
	runtime.KeepAlive(out)
	runtime.KeepAlive(&ctx)
	if err != nil {
		return 0, nil, 0, err
	}
	return attr.retval, out[:attr.sizeOut], attr.duration, nil
}

// Package tun opens a Linux TUN device with the virtio-net header
// (IFF_VNET_HDR) and TCP segmentation offload turned on, so that reads and
// writes carry whole TCP super-packets (up to 64 KiB, dozens of segments per
// system call) with partial checksums, the way a virtio NIC does.
//
// Written by hand: wireguard-go's tun package also speaks virtio-net, but it
// splits super-packets into segments on read (GSO) and coalesces on write
// (GRO); a translator wants the super-packet itself, untouched.
package tun

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gluon-464xlat/gluon-464xlat/header"
)

// VnetHdrLen is the size of struct virtio_net_hdr (without num_buffers).
const VnetHdrLen = 10

const (
	vnetFlagNeedsCsum = 1
	tunFCsum          = 0x01
	tunFTSO4          = 0x02
	tunFTSO6          = 0x04
	tunFTSOECN        = 0x08
)

// Device is a TUN interface with one file per queue.
type Device struct {
	Name    string
	Queues  []*Queue
	Offload bool
}

// Queue is one queue of a multi-queue TUN; use it from one goroutine.
type Queue struct {
	f       *os.File
	offload bool
}

// Open creates (or attaches to) TUN device name with n queues. With
// offload, the kernel may hand over TCP super-packets and partial checksums.
func Open(name string, n int, offload bool) (*Device, error) {
	if n < 1 {
		n = 1
	}
	d := &Device{Name: name, Offload: offload}
	for i := 0; i < n; i++ {
		q, err := openQueue(name, n > 1, offload)
		if err != nil {
			d.Close()
			return nil, fmt.Errorf("tun %s queue %d: %w", name, i, err)
		}
		d.Queues = append(d.Queues, q)
	}
	return d, nil
}

func openQueue(name string, multi, offload bool) (*Queue, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	flags := uint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if multi {
		flags |= unix.IFF_MULTI_QUEUE
	}
	if offload {
		flags |= unix.IFF_VNET_HDR
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if offload {
		sz := VnetHdrLen
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETVNETHDRSZ, uintptr(unsafe.Pointer(&sz))); e != 0 {
			unix.Close(fd)
			return nil, e
		}
		if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, tunFCsum|tunFTSO4|tunFTSO6|tunFTSOECN); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("TUNSETOFFLOAD: %w", err)
		}
	}
	// os.NewFile on a non-blocking fd puts it in Go's poller: a blocked Read
	// parks the goroutine, and Close wakes it.
	return &Queue{f: os.NewFile(uintptr(fd), "/dev/net/tun"), offload: offload}, nil
}

// Close closes every queue; the kernel removes a non-persistent device.
func (d *Device) Close() error {
	var errs []error
	for _, q := range d.Queues {
		errs = append(errs, q.f.Close())
	}
	return errors.Join(errs...)
}

// Read reads one packet (or super-packet) into buf so that its IP header
// starts at buf[start], and returns its length and offload state; start
// must leave VnetHdrLen bytes in front.
func (q *Queue) Read(buf []byte, start int) (int, header.Offload, error) {
	off := start
	if q.offload {
		off -= VnetHdrLen
	}
	n, err := q.f.Read(buf[off:])
	if err != nil {
		return 0, header.Offload{}, err
	}
	if !q.offload {
		return n, header.Offload{}, nil
	}
	if n < VnetHdrLen {
		return 0, header.Offload{}, errShort
	}
	h := buf[off:start]
	return n - VnetHdrLen, header.Offload{
		NeedsCsum: h[0]&vnetFlagNeedsCsum != 0,
		GSOType:   h[1],
		// Legacy virtio-net headers are in host byte order unless the
		// device was switched with TUNSETVNETLE/BE; we never do.
		GSOSize: binary.NativeEndian.Uint16(h[4:]),
	}, nil
}

var errShort = errors.New("tun: read shorter than the virtio-net header")

// Write writes the packet buf[start:start+n], filling the virtio-net header
// in front of it from o and the packet's own headers (csum_start/offset and
// hdr_len follow from them); start must leave VnetHdrLen bytes in front.
func (q *Queue) Write(buf []byte, start, n int, o header.Offload) error {
	pkt := buf[start : start+n]
	if !q.offload {
		_, err := q.f.Write(pkt)
		return err
	}
	h := buf[start-VnetHdrLen : start]
	clear(h)
	if o.NeedsCsum || o.GSOType != header.GSONone {
		l4, proto := transport(pkt)
		csumOff := 16
		if proto == 17 {
			csumOff = 6
		}
		hdrLen := l4 + 8
		if proto == 6 && n >= l4+13 {
			hdrLen = l4 + int(pkt[l4+12]>>4)*4
		}
		h[0] = vnetFlagNeedsCsum
		h[1] = o.GSOType
		binary.NativeEndian.PutUint16(h[2:], uint16(hdrLen))
		binary.NativeEndian.PutUint16(h[4:], o.GSOSize)
		binary.NativeEndian.PutUint16(h[6:], uint16(l4))
		binary.NativeEndian.PutUint16(h[8:], uint16(csumOff))
	}
	_, err := q.f.Write(buf[start-VnetHdrLen : start+n])
	return err
}

// transport returns the offset and protocol of the transport header of a
// translated packet (whose headers the translator wrote: no IPv6 extension
// headers other than a Fragment header).
func transport(b []byte) (int, uint8) {
	if b[0]>>4 == 4 {
		return int(b[0]&0xf) * 4, b[9]
	}
	if b[6] == 44 {
		return 48, b[40]
	}
	return 40, b[6]
}

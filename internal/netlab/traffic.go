package netlab

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/ipv6"

	"github.com/gluon-464xlat/gluon-464xlat/header"
)

// The test binary doubles as the traffic tool inside namespaces: TestMain
// calls HelperMain, which takes over when NETLAB_HELPER is set. This keeps
// byte-exact checking in Go without another program to install.

// Helper returns the command line that runs helper mode args in a namespace.
func Helper(args ...string) []string {
	return append([]string{"env", "NETLAB_HELPER=1", os.Args[0]}, args...)
}

// HelperMain runs helper mode and exits if NETLAB_HELPER is set.
func HelperMain() {
	if os.Getenv("NETLAB_HELPER") == "" {
		return
	}
	if err := helper(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// Pattern is the deterministic byte at stream offset i.
func Pattern(i int64) byte { return byte((uint64(i)*2654435761)>>13) ^ byte(i>>16) }

func fill(b []byte, off int64) {
	for i := range b {
		b[i] = Pattern(off + int64(i))
	}
}

func helper(args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("usage: MODE ADDR [ARGS]")
	}
	n := int64(0)
	if len(args) > 2 && args[0] != "raw-send" && args[0] != "udp-blast" && args[0] != "session-flood" && args[0] != "udp-send" && args[0] != "intercom-flood" {
		n, _ = strconv.ParseInt(args[2], 10, 64)
	}
	switch args[0] {
	case "tcp-serve": // send n pattern bytes to each client, one at a time; [RATE bytes/s]
		ln, err := net.Listen("tcp", args[1])
		if err != nil {
			return err
		}
		rate := int64(0)
		if len(args) > 3 {
			rate, _ = strconv.ParseInt(args[3], 10, 64)
		}
		fmt.Println("listening")
		for {
			c, err := ln.Accept()
			if err != nil {
				return err
			}
			w := bufio.NewWriterSize(c, 256<<10)
			buf := make([]byte, 64<<10)
			if rate > 0 {
				buf = buf[:max(rate/50, 1)] // a chunk every 20 ms
			}
			for off := int64(0); off < n; off += int64(len(buf)) {
				k := min(int64(len(buf)), n-off)
				fill(buf[:k], off)
				if _, err := w.Write(buf[:k]); err != nil {
					break
				}
				if rate > 0 {
					w.Flush()
					time.Sleep(20 * time.Millisecond)
				}
			}
			w.Flush()
			c.Close()
		}
	case "tcp-fetch": // read n bytes and check every one; [FILE: "unix-ns bytes" per read, for gap measurements]
		c, err := net.DialTimeout("tcp", args[1], 10*time.Second)
		if err != nil {
			return err
		}
		c.SetDeadline(time.Now().Add(120 * time.Second))
		var progress *os.File
		if len(args) > 3 {
			if progress, err = os.Create(args[3]); err != nil {
				return err
			}
			defer progress.Close()
		}
		buf := make([]byte, 64<<10)
		want := make([]byte, 64<<10)
		var got int64
		for {
			k, err := c.Read(buf)
			fill(want[:k], got)
			if !bytes.Equal(buf[:k], want[:k]) {
				return fmt.Errorf("byte mismatch near offset %d", got)
			}
			got += int64(k)
			if progress != nil && k > 0 {
				fmt.Fprintf(progress, "%d %d\n", time.Now().UnixNano(), got)
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				return fmt.Errorf("after %d bytes: %w", got, err)
			}
		}
		if got != n {
			return fmt.Errorf("got %d bytes, want %d", got, n)
		}
		fmt.Printf("ok %d bytes\n", got)
	case "udp-echo", "udp-echo-log": // ADDR [PORTS]: echo on PORTS consecutive ports from ADDR's; -log: print "from A" when a port's sender changes
		logFrom := args[0] == "udp-echo-log"
		addrs, err := portRange(args[1], max(int(n), 1))
		if err != nil {
			return err
		}
		errc := make(chan error)
		for _, a := range addrs {
			pc, err := net.ListenPacket("udp", a)
			if err != nil {
				return err
			}
			go func() {
				buf := make([]byte, 65536)
				last := ""
				for {
					k, a, err := pc.ReadFrom(buf)
					if err != nil {
						errc <- err
						return
					}
					if logFrom && a.String() != last {
						last = a.String()
						fmt.Printf("from %s seq=%s\n", last, buf[:min(k, 16)])
					}
					pc.WriteTo(buf[:k], a)
				}
			}()
		}
		fmt.Println("listening")
		return <-errc
	case "udp-ping": // ADDR SIZE COUNT: each datagram must come back byte-exact
		count := 3
		if len(args) > 3 {
			count, _ = strconv.Atoi(args[3])
		}
		c, err := net.Dial("udp", args[1])
		if err != nil {
			return err
		}
		msg := make([]byte, n)
		buf := make([]byte, 65536)
		okCount := 0
		for i := 0; i < count*3 && okCount < count; i++ {
			fill(msg, int64(i))
			c.Write(msg)
			c.SetReadDeadline(time.Now().Add(time.Second))
			k, err := c.Read(buf)
			if err == nil && bytes.Equal(buf[:k], msg) {
				okCount++
			}
		}
		if okCount < count {
			return fmt.Errorf("%d of %d %d-byte datagrams echoed", okCount, count, n)
		}
		fmt.Printf("ok %d datagrams of %d bytes\n", okCount, n)
	case "udp-refused": // ADDR: a datagram must come back as ICMP port unreachable
		c, err := net.Dial("udp", args[1])
		if err != nil {
			return err
		}
		buf := make([]byte, 1500)
		for i := 0; i < 5; i++ {
			c.Write([]byte("anyone there?"))
			c.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := c.Read(buf); err != nil && errors.Is(err, syscall.ECONNREFUSED) {
				fmt.Println("refused")
				return nil
			}
		}
		return fmt.Errorf("no port unreachable came back")
	case "udp-flows": // ADDR K: K new flows (sockets); how many are echoed, refused, then echoed again
		k := int(n)
		var conns []net.Conn
		okN, refused := 0, 0
		buf := make([]byte, 1500)
		for i := 0; i < k; i++ {
			c, err := net.Dial("udp", args[1])
			if err != nil {
				return err
			}
			defer c.Close()
			c.Write([]byte("hello"))
			c.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := c.Read(buf); err == nil {
				okN++
				conns = append(conns, c)
			} else if !errors.Is(err, os.ErrDeadlineExceeded) {
				refused++ // an ICMP error came back (EACCES, ECONNREFUSED, EHOSTUNREACH)
			}
		}
		again := 0
		for _, c := range conns {
			c.Write([]byte("again"))
			c.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := c.Read(buf); err == nil {
				again++
			}
		}
		fmt.Printf("ok=%d refused=%d again_ok=%d\n", okN, refused, again)
	case "new-sessions": // ADDR N CONC PORTS: N exchanges, each from a new socket, over PORTS server ports
		conc, ports := 64, 1
		if len(args) > 3 {
			conc, _ = strconv.Atoi(args[3])
		}
		if len(args) > 4 {
			ports, _ = strconv.Atoi(args[4])
		}
		return newSessions(args[1], int(n), conc, ports)
	case "udp-blast": // SRC6 DST6 N: N UDP flows (distinct source and destination ports) by raw socket
		if len(args) < 4 {
			return fmt.Errorf("usage: udp-blast SRC6 DST6 N")
		}
		k, err := strconv.Atoi(args[3])
		if err != nil {
			return err
		}
		return udpBlast(args[1], args[2], k)
	case "session-flood": // SRC6 DST6 N DPORTS [RATE]: N new UDP flows by sendmmsg on a raw socket; prints "sent N seconds S"
		if len(args) < 5 {
			return fmt.Errorf("usage: session-flood SRC6 DST6 N DPORTS [RATE]")
		}
		k, err1 := strconv.Atoi(args[3])
		dports, err2 := strconv.Atoi(args[4])
		rate, err3 := 0, error(nil)
		if len(args) > 5 {
			rate, err3 = strconv.Atoi(args[5])
		}
		if err1 != nil || err2 != nil || err3 != nil {
			return fmt.Errorf("session-flood: N, DPORTS and RATE are numbers")
		}
		return sessionFlood(args[1], args[2], k, dports, rate)
	case "udp-stream": // ADDR SECONDS: a datagram every 20 ms from an unconnected socket (ICMP
		// errors do not stop it); prints "[unix-time] bytes from ADDR seq=N" per echo, like ping -D
		return udpStream(args[1], time.Duration(n)*time.Second)
	case "dhcp-client": // IFACE: lease an IPv4 address (DORA) and configure it; SIGUSR1 renews, SIGTERM ends
		return dhcpClient(args[1])
	case "udp-flood": // ADDR SIZE SECONDS FLOWS [PPS]: datagrams by sendmmsg to FLOWS ports from ADDR's; prints "sent N"
		if len(args) < 5 {
			return fmt.Errorf("usage: udp-flood ADDR SIZE SECONDS FLOWS [PPS]")
		}
		secs, _ := strconv.Atoi(args[3])
		flows, _ := strconv.Atoi(args[4])
		pps := 0
		if len(args) > 5 {
			pps, _ = strconv.Atoi(args[5])
		}
		return udpFlood(args[1], int(n), time.Duration(secs)*time.Second, max(flows, 1), pps)
	case "udp-sink": // ADDR PORTS SECONDS: count datagrams (recvmmsg) on PORTS ports from ADDR's; prints "received N"
		if len(args) < 4 {
			return fmt.Errorf("usage: udp-sink ADDR PORTS SECONDS")
		}
		secs, _ := strconv.Atoi(args[3])
		return udpSink(args[1], max(int(n), 1), time.Duration(secs)*time.Second)
	case "udp-send": // SRC DST HEX: one datagram from SRC (any address: freebind, to forge) to DST
		if len(args) != 4 {
			return fmt.Errorf("usage: udp-send SRC DST HEX")
		}
		payload, err := hex.DecodeString(args[3])
		if err != nil {
			return err
		}
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			c.Control(func(fd uintptr) {
				syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, 15 /* IP_FREEBIND */, 1)
				serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IPV6, 78 /* IPV6_FREEBIND */, 1)
			})
			return serr
		}}
		pc, err := lc.ListenPacket(context.Background(), "udp", args[1])
		if err != nil {
			return err
		}
		defer pc.Close()
		dst, err := net.ResolveUDPAddr("udp", args[2])
		if err != nil {
			return err
		}
		_, err = pc.WriteTo(payload, dst)
		return err
	case "raw-send": // 4|6 FILE: send each length-prefixed packet as it is
		return rawSend(args[1], args[2])
	case "raw-capture": // 4|6 IFACE SECONDS FILE: the IP packets of that family arriving on IFACE, length-prefixed
		if len(args) != 5 {
			return fmt.Errorf("usage: raw-capture 4|6 IFACE SECONDS FILE")
		}
		secs, _ := strconv.Atoi(args[3])
		return rawCapture(args[1], args[2], time.Duration(secs)*time.Second, args[4])
	case "dns-lookup": // NAME SERVER: the IPv4 addresses of NAME from the DNS server SERVER (UDP), one "addr A" line each
		if len(args) != 3 {
			return fmt.Errorf("usage: dns-lookup NAME SERVER")
		}
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "udp", net.JoinHostPort(args[2], "53"))
		}}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		addrs, err := r.LookupIP(ctx, "ip4", args[1])
		if err != nil {
			return err
		}
		for _, a := range addrs {
			fmt.Printf("addr %s\n", a)
		}
	case "respondd-query": // DST SRC SECONDS: "GET nodeinfo statistics" to DST ([addr%iface]:port), as yanic asks
		if len(args) != 4 {
			return fmt.Errorf("usage: respondd-query DST SRC SECONDS")
		}
		secs, _ := strconv.Atoi(args[3])
		return respondQuery(args[1], args[2], time.Duration(secs)*time.Second)
	case "intercom-flood": // SRC DST CLIENTPREFIX SECONDS: forged intercom messages at full rate
		if len(args) != 5 {
			return fmt.Errorf("usage: intercom-flood SRC DST CLIENTPREFIX SECONDS")
		}
		p, err := netip.ParsePrefix(args[3])
		if err != nil {
			return err
		}
		secs, _ := strconv.Atoi(args[4])
		return intercomFlood(args[1], args[2], p, time.Duration(secs)*time.Second)
	case "nd-churn": // IFACE N WITHIP PREFIX TARGET TARGETMAC: one Neighbor Solicitation from each of N made-up clients
		if len(args) != 7 {
			return fmt.Errorf("usage: nd-churn IFACE N WITHIP PREFIX TARGET TARGETMAC")
		}
		withIP, err0 := strconv.Atoi(args[3])
		prefix, err1 := netip.ParsePrefix(args[4])
		target, err2 := netip.ParseAddr(args[5])
		mac, err3 := net.ParseMAC(args[6])
		if err := errors.Join(err0, err1, err2, err3); err != nil {
			return err
		}
		return ndChurn(args[1], int(n), withIP, prefix, target, mac)
	default:
		return fmt.Errorf("unknown mode %q", args[0])
	}
	return nil
}

// WritePackets stores packets for raw-send: a 2-byte length before each.
func WritePackets(path string, pkts [][]byte) error {
	var b bytes.Buffer
	for _, p := range pkts {
		b.Write([]byte{byte(len(p) >> 8), byte(len(p))})
		b.Write(p)
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// rawCapture writes the IP packets (no link header) of one family that
// arrive on iface within d to path, length-prefixed as WritePackets does;
// it prints "ready" once it listens.
func rawCapture(family, iface string, d time.Duration, path string) error {
	proto := uint16(syscall.ETH_P_IP)
	if family == "6" {
		proto = syscall.ETH_P_IPV6
	}
	htons := proto<<8 | proto>>8
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_DGRAM, int(htons))
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return err
	}
	if err := syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: htons, Ifindex: ifi.Index}); err != nil {
		return err
	}
	tv := syscall.NsecToTimeval(int64(100 * time.Millisecond))
	syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
	fmt.Println("ready")
	var pkts [][]byte
	buf := make([]byte, 65536)
	for end := time.Now().Add(d); time.Now().Before(end); {
		n, from, err := syscall.Recvfrom(fd, buf, 0)
		if err != nil {
			continue
		}
		if ll, ok := from.(*syscall.SockaddrLinklayer); ok && ll.Pkttype == syscall.PACKET_OUTGOING {
			continue
		}
		pkts = append(pkts, append([]byte(nil), buf[:n]...))
	}
	return WritePackets(path, pkts)
}

// ReadPackets reads what WritePackets wrote.
func ReadPackets(path string) ([][]byte, error) {
	data, err := os.ReadFile(path)
	var pkts [][]byte
	for len(data) >= 2 {
		n := int(data[0])<<8 | int(data[1])
		if len(data) < 2+n {
			break
		}
		pkts = append(pkts, data[2:2+n])
		data = data[2+n:]
	}
	return pkts, err
}

// rawSend sends whole IP packets, headers included, through a raw socket
// (IPPROTO_RAW implies header-included for both families on Linux).
func rawSend(family, path string) error {
	pkts, err := ReadPackets(path)
	if err != nil {
		return err
	}
	af := syscall.AF_INET
	if family == "6" {
		af = syscall.AF_INET6
	}
	fd, err := syscall.Socket(af, syscall.SOCK_RAW, syscall.IPPROTO_RAW)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	sent := 0
	for _, p := range pkts {
		var sa syscall.Sockaddr
		if af == syscall.AF_INET {
			s4 := &syscall.SockaddrInet4{}
			copy(s4.Addr[:], p[16:20])
			sa = s4
		} else {
			s6 := &syscall.SockaddrInet6{}
			copy(s6.Addr[:], p[24:40])
			sa = s6
		}
		if syscall.Sendto(fd, p, 0, sa) == nil {
			sent++
		}
	}
	fmt.Printf("sent %d\n", sent)
	return nil
}

func newSessions(addr string, n, conc, ports int) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	p0, _ := strconv.Atoi(port)
	var done, failed atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 64)
			for i := done.Add(1); i <= int64(n); i = done.Add(1) {
				c, err := net.Dial("udp", net.JoinHostPort(host, strconv.Itoa(p0+int(i)%max(ports, 1))))
				if err != nil {
					failed.Add(1)
					continue
				}
				c.Write([]byte("new"))
				c.SetReadDeadline(time.Now().Add(time.Second))
				if _, err := c.Read(buf); err != nil {
					failed.Add(1)
				}
				c.Close()
			}
		}()
	}
	wg.Wait()
	dt := time.Since(start).Seconds()
	ok := int64(n) - failed.Load()
	fmt.Printf("sessions_per_s=%.0f ok=%d failed=%d\n", float64(ok)/dt, ok, failed.Load())
	return nil
}

// udpBlast sends one UDP datagram for each of n flows (source port and
// destination port vary) from src to dst through a raw IPv6 socket, so no
// socket per flow is needed to fill a NAT64 with sessions.
func udpBlast(src, dst string, n int) error {
	s, d := net.ParseIP(src).To16(), net.ParseIP(dst).To16()
	fd, err := syscall.Socket(syscall.AF_INET6, syscall.SOCK_RAW, syscall.IPPROTO_RAW)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	sa := &syscall.SockaddrInet6{}
	copy(sa.Addr[:], d)
	p := make([]byte, udpFlowLen)
	sent := 0
	var firstErr error
	for i := 0; i < n; i++ {
		udpFlowPacket(p, s, d, uint16(10000+i%50000), uint16(20000+i/50000*1000+i%997))
		if err := syscall.Sendto(fd, p, 0, sa); err == nil {
			sent++
		} else if firstErr == nil {
			firstErr = err
		}
		if i%50 == 49 {
			// About 50k new flows/s: faster, the TUN's 500-packet queue
			// overflows while the NAT creates conntrack entries.
			time.Sleep(time.Millisecond)
		}
	}
	fmt.Printf("sent %d\n", sent)
	if sent < n {
		return fmt.Errorf("%d of %d not sent, first error: %v", n-sent, n, firstErr)
	}
	return nil
}

// udpFlowLen is the size of udpFlowPacket's datagrams: IPv6, UDP, "sess".
const udpFlowLen = 40 + 8 + 4

// udpFlowPacket writes into p (udpFlowLen bytes) an IPv6 UDP datagram from
// s to d (16-byte addresses) with the ports given and a valid checksum.
func udpFlowPacket(p, s, d []byte, sport, dport uint16) {
	p[0], p[1], p[2], p[3] = 0x60, 0, 0, 0
	binary.BigEndian.PutUint16(p[4:], 12)
	p[6], p[7] = 17, 64
	copy(p[8:24], s)
	copy(p[24:40], d)
	binary.BigEndian.PutUint16(p[40:], sport)
	binary.BigEndian.PutUint16(p[42:], dport)
	binary.BigEndian.PutUint16(p[44:], 12)
	binary.BigEndian.PutUint16(p[46:], 0)
	copy(p[48:], "sess")
	binary.BigEndian.PutUint16(p[46:], header.Checksum(p[40:52], header.PseudoSum(s, d, 17, 12)))
}

// sessionFlood sends n datagrams from src to dst, each the first of a new
// flow (destination ports 20000 to 20000+dports-1 in turn, then the next
// source port from 1024 on), by sendmmsg through a raw socket: as fast as
// it can, or at rate datagrams/s if rate > 0. It prints "sent N seconds S".
// A socket per session (new-sessions) costs the sender more than the
// translator under test spends on the session.
func sessionFlood(src, dst string, n, dports, rate int) error {
	s, d := net.ParseIP(src).To16(), net.ParseIP(dst).To16()
	if s == nil || d == nil || dports < 1 || n > (65536-1024)*dports {
		return fmt.Errorf("session-flood: need two IPv6 addresses, DPORTS >= 1, N <= 64512*DPORTS")
	}
	fd, err := syscall.Socket(syscall.AF_INET6, syscall.SOCK_RAW, syscall.IPPROTO_RAW)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), "raw6")
	defer f.Close()
	c, err := net.FilePacketConn(f)
	if err != nil {
		return err
	}
	defer c.Close()
	pc := ipv6.NewPacketConn(c)
	msgs := make([]ipv6.Message, 64)
	to := &net.IPAddr{IP: d}
	for i := range msgs {
		msgs[i].Buffers, msgs[i].Addr = [][]byte{make([]byte, udpFlowLen)}, to
	}
	start := time.Now()
	i := 0
	for i < n {
		k := min(len(msgs), n-i)
		if rate > 0 {
			due := int(time.Since(start).Seconds()*float64(rate)) - i
			if due <= 0 {
				time.Sleep(200 * time.Microsecond)
				continue
			}
			k = min(k, due)
		}
		for j := 0; j < k; j++ {
			flow := i + j
			udpFlowPacket(msgs[j].Buffers[0], s, d, uint16(1024+flow/dports%(65536-1024)), uint16(20000+flow%dports))
		}
		m, err := pc.WriteBatch(msgs[:k], 0)
		if m <= 0 {
			if err != nil && !errors.Is(err, syscall.ENOBUFS) {
				return err
			}
			m = k // ENOBUFS: a full queue dropped them; the receiver counts
		}
		i += m
	}
	fmt.Printf("sent %d seconds %.6f\n", i, time.Since(start).Seconds())
	return nil
}

func udpStream(addr string, d time.Duration) error {
	ra, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return err
	}
	pc, err := net.ListenPacket("udp", ":0")
	if err != nil {
		return err
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 64)
		for {
			k, _, err := pc.ReadFrom(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			now := time.Now()
			fmt.Printf("[%d.%06d] %d bytes from %s seq=%s\n", now.Unix(), now.Nanosecond()/1000, k, addr, buf[:k])
		}
	}()
	end := time.Now().Add(d)
	for seq := 0; time.Now().Before(end); seq++ {
		pc.WriteTo([]byte(strconv.Itoa(seq)), ra)
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	return nil
}

package netlab

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"
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
	if len(args) > 2 && args[0] != "raw-send" {
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
	case "tcp-fetch": // read n bytes and check every one
		c, err := net.DialTimeout("tcp", args[1], 10*time.Second)
		if err != nil {
			return err
		}
		c.SetDeadline(time.Now().Add(120 * time.Second))
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
	case "udp-echo":
		pc, err := net.ListenPacket("udp", args[1])
		if err != nil {
			return err
		}
		fmt.Println("listening")
		buf := make([]byte, 65536)
		for {
			k, a, err := pc.ReadFrom(buf)
			if err != nil {
				return err
			}
			pc.WriteTo(buf[:k], a)
		}
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
	case "raw-send": // 4|6 FILE: send each length-prefixed packet as it is
		return rawSend(args[1], args[2])
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

// rawSend sends whole IP packets, headers included, through a raw socket
// (IPPROTO_RAW implies header-included for both families on Linux).
func rawSend(family, path string) error {
	data, err := os.ReadFile(path)
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
	for len(data) >= 2 {
		n := int(data[0])<<8 | int(data[1])
		if len(data) < 2+n {
			break
		}
		p := data[2 : 2+n]
		data = data[2+n:]
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

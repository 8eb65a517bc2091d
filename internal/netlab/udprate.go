package netlab

import (
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Packet-rate helpers for the benchmarks: a sender that is not the
// bottleneck (sendmmsg, 64 datagrams a call, one goroutine per flow) and a
// receiver that counts (recvmmsg). Bulk TCP hides per-packet costs behind
// offload's super-packets; these count packets.

// udpFlood sends size-byte datagrams to flows consecutive ports from
// addr's for d, as fast as it can or at pps in all; it prints what it sent.
func udpFlood(addr string, size int, d time.Duration, flows int, pps int) error {
	addrs, err := portRange(addr, flows)
	if err != nil {
		return err
	}
	var sent atomic.Int64
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	for f := 0; f < flows; f++ {
		c, err := net.Dial("udp", addrs[f])
		if err != nil {
			return err
		}
		defer c.Close()
		// sendmmsg through x/net's batch writer of the address's family
		var pc interface {
			WriteBatch([]ipv4.Message, int) (int, error)
		} = ipv4.NewPacketConn(c.(*net.UDPConn))
		if c.RemoteAddr().(*net.UDPAddr).IP.To4() == nil {
			pc = ipv6.NewPacketConn(c.(*net.UDPConn))
		}
		msgs := make([]ipv4.Message, 64)
		payload := make([]byte, size)
		for i := range msgs {
			msgs[i].Buffers = [][]byte{payload}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			var mine int64
			for time.Now().Before(end) {
				batch := msgs
				if pps > 0 {
					// this flow's share of the rate: send what is due
					due := int64(time.Since(start).Seconds()*float64(pps)/float64(flows)) - mine
					if due <= 0 {
						time.Sleep(time.Millisecond)
						continue
					}
					batch = msgs[:min(int64(len(msgs)), due)]
				}
				n, err := pc.WriteBatch(batch, 0)
				if err != nil && n <= 0 {
					// ENOBUFS or ECONNREFUSED (an ICMP error came back): go on
					continue
				}
				mine += int64(n)
				sent.Add(int64(n))
			}
		}()
	}
	wg.Wait()
	fmt.Printf("sent %d\n", sent.Load())
	return nil
}

// udpSink counts the datagrams arriving on ports consecutive ports from
// addr's for d and prints "received N".
func udpSink(addr string, ports int, d time.Duration) error {
	addrs, err := portRange(addr, ports)
	if err != nil {
		return err
	}
	var got atomic.Int64
	var conns []*net.UDPConn
	for p := 0; p < ports; p++ {
		a, err := net.ResolveUDPAddr("udp", addrs[p])
		if err != nil {
			return err
		}
		c, err := net.ListenUDP("udp", a)
		if err != nil {
			return err
		}
		c.SetReadBuffer(4 << 20)
		conns = append(conns, c)
	}
	fmt.Println("listening")
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func(c *net.UDPConn) {
			defer wg.Done()
			pc := ipv6.NewPacketConn(c)
			msgs := make([]ipv6.Message, 64)
			for i := range msgs {
				msgs[i].Buffers = [][]byte{make([]byte, 2048)}
			}
			for {
				n, err := pc.ReadBatch(msgs, 0)
				if err != nil {
					return
				}
				got.Add(int64(n))
			}
		}(c)
	}
	time.Sleep(d)
	for _, c := range conns {
		c.Close()
	}
	wg.Wait()
	fmt.Printf("received %d\n", got.Load())
	return nil
}

// portRange is n addresses of addr's host on consecutive ports from
// addr's (the helpers' ADDR [PORTS] arguments).
func portRange(addr string, n int) ([]string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	base, err := strconv.Atoi(port)
	if err != nil {
		return nil, err
	}
	out := make([]string, n)
	for i := range out {
		out[i] = net.JoinHostPort(host, strconv.Itoa(base+i))
	}
	return out, nil
}

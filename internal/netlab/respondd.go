package netlab

import (
	"bytes"
	"compress/flate"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"time"
)

// RespondReply is one node's answer to a respondd query.
type RespondReply struct {
	From  string          `json:"from"`
	Reply json.RawMessage `json:"reply"` // {"nodeinfo": {...}, "statistics": {...}}
}

// respondQuery asks as yanic does: one UDP datagram "GET nodeinfo
// statistics" to dst (a node's address or ff02::2:1001%iface, port 1001)
// from src ("" for any), then every reply for d, each a raw-deflate
// compressed JSON object; prints one RespondReply per line.
func respondQuery(dst, src string, d time.Duration) error {
	raddr, err := net.ResolveUDPAddr("udp6", dst)
	if err != nil {
		return err
	}
	var laddr *net.UDPAddr
	if src != "" {
		if laddr, err = net.ResolveUDPAddr("udp6", net.JoinHostPort(src, "0")); err != nil {
			return err
		}
	}
	c, err := net.ListenUDP("udp6", laddr)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.WriteToUDP([]byte("GET nodeinfo statistics"), raddr); err != nil {
		return err
	}
	c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 64<<10)
	for {
		n, from, err := c.ReadFromUDP(buf)
		if err != nil {
			return nil // the deadline: every reply has had its time
		}
		body, err := io.ReadAll(flate.NewReader(bytes.NewReader(buf[:n])))
		if err != nil {
			return fmt.Errorf("reply from %s: not raw deflate: %v", from, err)
		}
		if !json.Valid(body) {
			return fmt.Errorf("reply from %s: not JSON: %q", from, body)
		}
		line, _ := json.Marshal(RespondReply{From: from.IP.String(), Reply: body})
		fmt.Println(string(line))
	}
}

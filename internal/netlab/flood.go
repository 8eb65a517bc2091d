package netlab

import (
	"fmt"
	"math/rand"
	"net"
	"net/netip"
	"time"

	"github.com/gluon-464xlat/gluon-464xlat/intercom"
)

// intercomFlood sends forged intercom messages from src to dst (port 5523)
// as fast as the socket takes them for d: CLAIMs, INFOs and SEEKs for
// random clients and addresses in clientPrefix, ROAMs with a wrong key and
// unsigned, each with a fresh nonce and sender (so no two are duplicates).
func intercomFlood(src, dst string, clientPrefix netip.Prefix, d time.Duration) error {
	raddr, err := net.ResolveUDPAddr("udp6", dst)
	if err != nil {
		return err
	}
	var laddr *net.UDPAddr
	if src != "" {
		if laddr, err = net.ResolveUDPAddr("udp6", src); err != nil {
			return err
		}
	}
	c, err := net.ListenUDP("udp6", laddr)
	if err != nil {
		return err
	}
	defer c.Close()
	rnd := rand.New(rand.NewSource(1))
	randAddr := func(p netip.Prefix) netip.Addr {
		a := p.Addr().As16()
		for i := p.Bits() / 8; i < 16; i++ {
			a[i] = byte(rnd.Intn(256))
		}
		return netip.AddrFrom16(a)
	}
	randMAC := func() net.HardwareAddr {
		return net.HardwareAddr{0x02, byte(rnd.Intn(256)), byte(rnd.Intn(256)), byte(rnd.Intn(256)), byte(rnd.Intn(256)), byte(rnd.Intn(256))}
	}
	clat := netip.MustParsePrefix("fddd:1337:1337::/48")
	sent := 0
	for end := time.Now().Add(d); time.Now().Before(end); {
		h := intercom.Header{TTL: 1, Nonce: rnd.Uint32(), Sender: randAddr(netip.MustParsePrefix("fd00::/8"))}
		x := &intercom.XLAT{MAC: randMAC(), ClientIP: netip.AddrFrom4([4]byte{10, 130, byte(rnd.Intn(256)), byte(rnd.Intn(256))}),
			Lease: 3600, CLATD: netip.PrefixFrom(randAddr(clat), 96).Masked(), CLATB: netip.PrefixFrom(randAddr(clat), 96).Masked()}
		var b []byte
		switch sent % 5 {
		case 0:
			b = intercom.Claim(h, randMAC())
		case 1:
			b = intercom.Info(h, netip.Addr{}, randMAC(), []netip.Addr{randAddr(clientPrefix)})
		case 2:
			h.TTL = 255
			b = intercom.Seek(h, randAddr(clientPrefix))
		case 3:
			b = intercom.Roam(h, x, []byte("not the mesh's key at all"), uint32(time.Now().Unix()))
		case 4:
			b = intercom.InfoXLAT(h, x, []byte("not the mesh's key at all"), uint32(time.Now().Unix()))
		}
		if _, err := c.WriteToUDP(b, raddr); err == nil {
			sent++
		}
	}
	fmt.Printf("sent %d\n", sent)
	return nil
}

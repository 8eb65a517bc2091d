package netlab

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// ndChurn sends, from n made-up clients on iface (MACs 02:ee:00:xx:xx:xx,
// addresses PREFIX::ee:xx:xx:xx), one Neighbor Solicitation each to
// targetMAC: the first frame of a station that comes and goes, which the
// node's client bridge learns. The first withIP ask for target, an address
// of the node: RFC 4861 section 7.2.3, the node's kernel makes a neighbour
// entry for the source, from which l3roamd learns the client's address too.
// The others ask for an address nobody has (the kernel makes no entry: the
// neighbour table's limits are the host's, shared by every namespace).
func ndChurn(iface string, n, withIP int, prefix netip.Prefix, target netip.Addr, targetMAC net.HardwareAddr) error {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return err
	}
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	sa := &syscall.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}
	copy(sa.Addr[:], targetMAC)
	sent := 0
	for i := 0; i < n; i++ {
		mac := net.HardwareAddr{0x02, 0xee, 0, byte(i >> 16), byte(i >> 8), byte(i)}
		src := prefix.Addr().As16()
		src[10], src[11], src[13], src[14], src[15] = 0, 0xee, byte(i>>16), byte(i>>8), byte(i)
		eth := &layers.Ethernet{SrcMAC: mac, DstMAC: targetMAC, EthernetType: layers.EthernetTypeIPv6}
		asked := target
		if i >= withIP {
			asked = netip.MustParseAddr("fe80::dead:beef")
		}
		ip := &layers.IPv6{Version: 6, HopLimit: 255, NextHeader: layers.IPProtocolICMPv6, SrcIP: src[:], DstIP: asked.AsSlice()}
		icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborSolicitation, 0)}
		icmp.SetNetworkLayerForChecksum(ip)
		ns := &layers.ICMPv6NeighborSolicitation{TargetAddress: asked.AsSlice(),
			Options: layers.ICMPv6Options{{Type: layers.ICMPv6OptSourceAddress, Data: mac}}}
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}, eth, ip, icmp, ns); err != nil {
			return err
		}
		if syscall.Sendto(fd, buf.Bytes(), 0, sa) == nil {
			sent++
		}
	}
	fmt.Printf("sent %d\n", sent)
	return nil
}

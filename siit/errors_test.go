package siit

import (
	"net"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/gluon-464xlat/gluon-464xlat/header"
)

// RFC 7915 section 4.5: a UDP fragment with a zero checksum (not computable
// without the whole datagram) is dropped, and Destination Unreachable,
// administratively prohibited (3/13) goes back to its source.
func TestRFC7915Section4_5ZeroChecksumFragmentAnswered(t *testing.T) {
	tr := newT(t)
	l3 := ip4(layers.IPProtocolUDP, client4, server4)
	l3.Flags = layers.IPv4MoreFragments
	pkt := build(t, l3, &layers.UDP{SrcPort: 1, DstPort: 2}, payloadOf(64))
	pkt[26], pkt[27] = 0, 0 // no UDP checksum
	res, r := run(t, tr, pkt, header.Offload{})
	if r != DropUDPZeroChecksum || len(res) != 1 {
		t.Fatalf("%v, %d packets", r, len(res))
	}
	checkPacket(t, res[0])
	if res[0][20] != 3 || res[0][21] != 13 || !net.IP(header.IPv4(res[0]).Dst()).Equal(client4) {
		t.Errorf("want 3/13 to the client, got %d/%d", res[0][20], res[0][21])
	}
}

// RFC 7915 section 5.4: an IPv6 packet dropped because its destination (or,
// for a non-error, its source) has no IPv4 mapping gets ICMPv6 Destination
// Unreachable, administratively prohibited (1/1).
func TestRFC7915Section5_4UnmappableAnswered(t *testing.T) {
	tr := newT(t)
	for name, pkt := range map[string][]byte{
		"destination": build(t, ip6(layers.IPProtocolUDP, client6, router6), &layers.UDP{SrcPort: 1, DstPort: 2}, payloadOf(10)),
		"source":      build(t, ip6(layers.IPProtocolUDP, router6, client6), &layers.UDP{SrcPort: 1, DstPort: 2}, payloadOf(10)),
	} {
		res, r := run(t, tr, pkt, header.Offload{})
		if r != DropUntranslatableDst && r != DropUntranslatableSrc || len(res) != 1 {
			t.Fatalf("%s: %v, %d packets", name, r, len(res))
		}
		checkPacket(t, res[0])
		if res[0][40] != 1 || res[0][41] != 1 || !net.IP(header.IPv6(res[0]).Dst()).Equal(net.IP(header.IPv6(pkt).Src())) {
			t.Errorf("%s: want 1/1 to the source, got %d/%d", name, res[0][40], res[0][41])
		}
	}
}

// RFC 4443 section 2.4 (f) (MUST) and RFC 1812 section 4.3.2.8: the errors a
// translator originates are rate-limited: a burst of 500 expiring packets
// gets at most the bucket's burst (plus what refills meanwhile) of errors,
// and the rest are counted as limited.
func TestRFC4443Section2_4fErrorsRateLimited(t *testing.T) {
	tr := newT(t)
	l3 := ip6(layers.IPProtocolUDP, client6, server6)
	l3.HopLimit = 1
	pkt := build(t, l3, &layers.UDP{SrcPort: 1, DstPort: 2}, payloadOf(10))
	sent := 0
	start := time.Now()
	for i := 0; i < 500; i++ {
		res, _ := run(t, tr, append([]byte(nil), pkt...), header.Offload{})
		sent += len(res)
	}
	// what refilled while the loop ran (slow under qemu) is allowed too
	most := errorBurst + int(time.Since(start).Seconds()*errorsPerSecond) + 1
	limited := int(tr.Stats.ICMPErrorsLimited.Load())
	if sent+limited != 500 || sent < errorBurst || sent > most || limited == 0 && most < 500 {
		t.Fatalf("%d errors sent (at most %d), %d limited, of 500", sent, most, limited)
	}
}

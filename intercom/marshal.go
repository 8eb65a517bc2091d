package intercom

import (
	"encoding/binary"
	"net"
	"net/netip"
)

// appendHeader writes the 24-byte header.
func appendHeader(b []byte, h Header, typ uint8) []byte {
	b = append(b, Version, h.TTL, typ, 0)
	b = binary.BigEndian.AppendUint32(b, h.Nonce)
	a := h.Sender.As16()
	return append(b, a[:]...)
}

// Seek asks every node (multicast, TTL 255 in the C daemon) who has addr.
func Seek(h Header, addr netip.Addr) []byte {
	b := appendHeader(make([]byte, 0, HeaderLen+20), h, TypeSeek)
	a := addr.As16()
	return append(append(b, tlvSeekAddress, 20, 0, 0), a[:]...)
}

// Claim tells the node that served the client with mac so far that this
// node serves it now.
func Claim(h Header, mac net.HardwareAddr) []byte {
	b := appendHeader(make([]byte, 0, HeaderLen+8), h, TypeClaim)
	return append(append(b, tlvClaimMAC, 8), mac[:6]...)
}

// Ack confirms an INFO about the client with mac.
func Ack(h Header, mac net.HardwareAddr) []byte {
	b := appendHeader(make([]byte, 0, HeaderLen+8), h, TypeAck)
	return append(append(b, tlvAckMAC, 8), mac[:6]...)
}

// Info answers a CLAIM: the sender's PLAT prefix (INFO_PLAT, lease 0 as the
// C daemon sends it) and the client's addresses (INFO_BASIC, at most
// MaxInfoAddrs; the rest are dropped as the C daemon does).
func Info(h Header, plat netip.Addr, mac net.HardwareAddr, addrs []netip.Addr) []byte {
	if len(addrs) > MaxInfoAddrs {
		addrs = addrs[:MaxInfoAddrs]
	}
	b := appendHeader(make([]byte, 0, HeaderLen+20+8+16*len(addrs)), h, TypeInfo)
	p := plat.As16()
	if !plat.IsValid() {
		p = [16]byte{}
	}
	b = append(append(b, tlvInfoPLAT, 20, 0, 0), p[:]...)
	b = append(append(b, tlvInfoBasic, byte(8+16*len(addrs))), mac[:6]...)
	for _, a := range addrs {
		x := a.As16()
		b = append(b, x[:]...)
	}
	return b
}

// InfoXLAT carries the client's 464xlat state from the old node to the new
// one, signed with key at time now (unix seconds).
func InfoXLAT(h Header, x *XLAT, key []byte, now uint32) []byte {
	b := appendHeader(make([]byte, 0, HeaderLen+2+xlatClientLen+2+authLen), h, TypeInfoXLAT)
	b = append(append(b, tlvXLATClient, 2+xlatClientLen), x.MAC[:6]...)
	c := x.ClientIP.As4()
	b = binary.BigEndian.AppendUint32(append(b, c[:]...), x.Lease)
	b = appendPrefix96(appendPrefix96(b, x.CLATD), x.PLATC)
	return sign(appendToken(b, x.Token), key, now)
}

// Roam tells the client's PLAT (at PLATC::192.0.0.1) that the client with
// x.ClientIP under x.CLATD is now behind x.CLATB, signed with key.
func Roam(h Header, x *XLAT, key []byte, now uint32) []byte {
	b := appendHeader(make([]byte, 0, HeaderLen+2+roamClientLen+2+authLen), h, TypeRoam)
	b = append(b, tlvRoamClient, 2+roamClientLen)
	c := x.ClientIP.As4()
	b = binary.BigEndian.AppendUint32(append(b, c[:]...), x.Lease)
	b = appendPrefix96(appendPrefix96(b, x.CLATD), x.CLATB)
	return sign(appendToken(b, x.Token), key, now)
}

// appendToken adds the handover TLV when there is a token (a renewal's
// ROAM from the node that holds the sessions has none).
func appendToken(b []byte, token uint64) []byte {
	if token == 0 {
		return b
	}
	return binary.BigEndian.AppendUint64(append(b, tlvHandover, 10), token)
}

// ConsentAsk is a PLAT's CONSENT to the node holding c.ClientIP's sessions.
func ConsentAsk(h Header, c *Consent, key []byte, now uint32) []byte {
	b := appendHeader(make([]byte, 0, HeaderLen+2+consentLen+2+authLen), h, TypeConsent)
	b = binary.BigEndian.AppendUint64(append(b, tlvConsent, 2+consentLen), c.Challenge)
	ip := c.ClientIP.As4()
	b = binary.BigEndian.AppendUint64(append(b, ip[:]...), c.Token)
	b = appendPrefix96(appendPrefix96(b, c.CLATD), c.CLATB)
	return sign(b, key, now)
}

// ConsentReply answers a CONSENT: c.Yes if the sender handed the client
// over with the token asked about.
func ConsentReply(h Header, c *Consent, key []byte, now uint32) []byte {
	b := appendHeader(make([]byte, 0, HeaderLen+2+consentReplyLen+2+authLen), h, TypeConsentReply)
	b = binary.BigEndian.AppendUint64(append(b, tlvConsent, 2+consentReplyLen), c.Challenge)
	ip := c.ClientIP.As4()
	yes := byte(0)
	if c.Yes {
		yes = 1
	}
	b = append(append(b, ip[:]...), yes)
	return sign(b, key, now)
}

func appendPrefix96(b []byte, p netip.Prefix) []byte {
	a := p.Addr().As16()
	return append(b, a[:12]...)
}

// Package intercom is the wire format of l3roamd's intercom protocol, the
// UDP messages (port 5523) by which nodes hand a roaming client over: SEEK,
// CLAIM, INFO and ACK exactly as the C l3roamd (freifunk-gluon/l3roamd)
// sends them, so both daemons can share a mesh, plus the 464xlat messages
// INFO_XLAT and ROAM (docs/l3roamd-wire.md has the byte layouts).
//
// Parsing never panics and never loops: every TLV must have a length of at
// least 2 and fit in the packet, else the packet is rejected with an error
// naming the reason. Unknown TLVs are skipped by their length. (The C
// daemon does not advance past an unknown TLV, which is why the 464xlat
// data travels in message types of its own that C nodes ignore, never as
// new TLVs inside its messages.)
package intercom

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// Port is the intercom UDP port; Group the multicast group of SEEKs on mesh
// interfaces.
const Port = 5523

// ConsentPort carries CONSENT and CONSENT_REPLY, apart from the rest (a
// flood at Port must not drown them).
const ConsentPort = 5524

// Group is ff02::5523.
var Group = netip.MustParseAddr("ff02::5523")

// Version is the packet format version of the C l3roamd.
const Version = 0

// Message types. 0-3 are the C l3roamd's; 4 and up are ours, always sent
// unicast with TTL 1, which C nodes neither act on nor forward.
const (
	TypeSeek     = 0
	TypeClaim    = 1
	TypeInfo     = 2
	TypeAck      = 3
	TypeInfoXLAT = 4
	TypeRoam     = 5
	// CONSENT: a PLAT asks the node that holds a client's sessions whether
	// it handed the client over (docs/l3roamd-security.md).
	TypeConsent      = 6
	TypeConsentReply = 7
)

// TLV types, by message.
const (
	tlvSeekAddress = 0 // SEEK: 2 pad + 16 address
	tlvClaimMAC    = 0 // CLAIM: 6 MAC
	tlvAckMAC      = 0 // ACK: 6 MAC
	tlvInfoPLAT    = 0 // INFO: lease u16 + 16 PLAT prefix
	tlvInfoBasic   = 1 // INFO: 6 MAC + n x 16 addresses
	tlvXLATClient  = 0 // INFO_XLAT: the client's 464xlat state
	tlvRoamClient  = 0 // ROAM: the roamed client
	tlvHandover    = 1 // INFO_XLAT, ROAM: the handover token
	tlvConsent     = 0 // CONSENT, CONSENT_REPLY
	tlvAuth        = 255
)

// HeaderLen is the fixed header: version, ttl, type, empty, nonce, sender.
const HeaderLen = 24

// MaxInfoAddrs is how many addresses one INFO_BASIC carries (its length
// must fit a byte).
const MaxInfoAddrs = 15

// Header is the 24-byte header of every message.
type Header struct {
	TTL    uint8
	Type   uint8
	Nonce  uint32
	Sender netip.Addr // the sending node's own IP (the C daemon's -a)
}

// Errors of Parse, one per reason a packet is dropped.
var (
	ErrShort      = errors.New("shorter than the header")
	ErrVersion    = errors.New("unknown packet format version")
	ErrTLV        = errors.New("TLV length out of bounds")
	ErrTLVSize    = errors.New("TLV of the wrong size")
	ErrMissing    = errors.New("required TLV missing")
	ErrBadMAC     = errors.New("bad MAC address")
	ErrTooMany    = errors.New("too many addresses")
	ErrUnknownMsg = errors.New("unknown message type")
)

// Message is one parsed packet. Which fields are set depends on Type.
type Message struct {
	Header
	Address netip.Addr       // SEEK
	MAC     net.HardwareAddr // CLAIM, ACK, INFO (basic)
	Lease   uint16           // INFO (plat): the C daemon sends 0
	PLAT    netip.Addr       // INFO (plat): the sender's PLAT prefix, 16 bytes
	Addrs   []netip.Addr     // INFO (basic)
	XLAT    *XLAT            // INFO_XLAT, ROAM
	Consent *Consent         // CONSENT, CONSENT_REPLY
	Auth    *Auth            // INFO_XLAT, ROAM: the trailing AUTH TLV, if any
	// Signed is the part of the packet the AUTH TLV covers (see Verify).
	Signed []byte
	token  uint64 // the handover TLV, wherever it came, until it joins XLAT
}

// XLAT is a client's 464xlat state: INFO_XLAT from the old node to the new,
// ROAM from the new node to the client's PLAT.
type XLAT struct {
	MAC      net.HardwareAddr // INFO_XLAT only
	ClientIP netip.Addr       // the client's IPv4
	Lease    uint32           // seconds of its DHCP lease left
	CLATD    netip.Prefix     // the /96 of the node where it got the lease
	PLATC    netip.Prefix     // INFO_XLAT: the /96 of the PLAT its sessions use
	CLATB    netip.Prefix     // ROAM: the /96 of the node it roamed to
	// Token is the old node's random proof of the handover: sent in
	// INFO_XLAT to the node it handed the client to, repeated in that
	// node's ROAM, and asked back by the PLAT (0: none).
	Token uint64
}

// Consent is a PLAT's question to the node that holds a client's sessions
// (CONSENT), and that node's answer (CONSENT_REPLY: Challenge, ClientIP
// and Yes only).
type Consent struct {
	Challenge uint64     // the PLAT's random number, echoed in the reply
	ClientIP  netip.Addr // the client's IPv4
	Token     uint64     // CONSENT: the ROAM's handover token
	CLATD     netip.Prefix
	CLATB     netip.Prefix // CONSENT: where the ROAM wants the sessions
	Yes       bool         // CONSENT_REPLY
}

// Parse decodes a packet. It rejects what it cannot read safely; it does
// not judge content (lease sanity, authentication: see Verify and the
// daemon).
func Parse(b []byte) (*Message, error) {
	if len(b) < HeaderLen {
		return nil, ErrShort
	}
	if b[0] != Version {
		return nil, ErrVersion
	}
	m := &Message{Header: Header{
		TTL: b[1], Type: b[2], Nonce: binary.BigEndian.Uint32(b[4:8]),
		Sender: netip.AddrFrom16([16]byte(b[8:24])),
	}}
	if m.Type > TypeConsentReply {
		return nil, ErrUnknownMsg
	}
	seen := false
	for off := HeaderLen; off < len(b); {
		if len(b)-off < 2 || b[off+1] < 2 || int(b[off+1]) > len(b)-off {
			return nil, ErrTLV
		}
		t, v := b[off], b[off+2:off+int(b[off+1])]
		if t == tlvAuth && m.Type >= TypeInfoXLAT {
			if off+int(b[off+1]) != len(b) || len(v) != authLen {
				return nil, ErrTLVSize
			}
			m.Auth = &Auth{Time: binary.BigEndian.Uint32(v[0:4]), Sum: [16]byte(v[4:20])}
			m.Signed = b[:off+2+4]
			break
		}
		ok, err := m.parseTLV(t, v)
		if err != nil {
			return nil, fmt.Errorf("type %d TLV %d: %w", m.Type, t, err)
		}
		seen = seen || ok
		off += int(b[off+1])
	}
	if !seen && m.Type != TypeInfo {
		return nil, ErrMissing
	}
	if m.Type == TypeInfo && m.MAC == nil {
		return nil, ErrMissing
	}
	if m.XLAT != nil {
		m.XLAT.Token = m.token
	}
	return m, nil
}

// parseTLV fills m from one TLV; it reports whether the TLV was the
// message's main one. Unknown TLVs are skipped.
func (m *Message) parseTLV(t uint8, v []byte) (bool, error) {
	switch {
	case m.Type == TypeSeek && t == tlvSeekAddress:
		if len(v) != 18 {
			return false, ErrTLVSize
		}
		m.Address = netip.AddrFrom16([16]byte(v[2:18]))
	case (m.Type == TypeClaim && t == tlvClaimMAC) || (m.Type == TypeAck && t == tlvAckMAC):
		if len(v) != 6 {
			return false, ErrTLVSize
		}
		m.MAC = net.HardwareAddr(append([]byte(nil), v...))
	case m.Type == TypeInfo && t == tlvInfoPLAT:
		if len(v) != 18 {
			return false, ErrTLVSize
		}
		m.Lease = binary.BigEndian.Uint16(v[0:2])
		m.PLAT = netip.AddrFrom16([16]byte(v[2:18]))
		return false, nil
	case m.Type == TypeInfo && t == tlvInfoBasic:
		if len(v) < 6 || (len(v)-6)%16 != 0 {
			return false, ErrTLVSize
		}
		if (len(v)-6)/16 > MaxInfoAddrs {
			return false, ErrTooMany
		}
		m.MAC = net.HardwareAddr(append([]byte(nil), v[:6]...))
		for a := v[6:]; len(a) > 0; a = a[16:] {
			m.Addrs = append(m.Addrs, netip.AddrFrom16([16]byte(a[:16])))
		}
	case m.Type == TypeInfoXLAT && t == tlvXLATClient:
		if len(v) != xlatClientLen {
			return false, ErrTLVSize
		}
		m.XLAT = &XLAT{
			MAC:      net.HardwareAddr(append([]byte(nil), v[0:6]...)),
			ClientIP: netip.AddrFrom4([4]byte(v[6:10])),
			Lease:    binary.BigEndian.Uint32(v[10:14]),
			CLATD:    prefix96(v[14:26]),
			PLATC:    prefix96(v[26:38]),
		}
	case m.Type == TypeRoam && t == tlvRoamClient:
		if len(v) != roamClientLen {
			return false, ErrTLVSize
		}
		m.XLAT = &XLAT{
			ClientIP: netip.AddrFrom4([4]byte(v[0:4])),
			Lease:    binary.BigEndian.Uint32(v[4:8]),
			CLATD:    prefix96(v[8:20]),
			CLATB:    prefix96(v[20:32]),
		}
	case (m.Type == TypeInfoXLAT || m.Type == TypeRoam) && t == tlvHandover:
		if len(v) != 8 {
			return false, ErrTLVSize
		}
		m.token = binary.BigEndian.Uint64(v)
		return false, nil
	case m.Type == TypeConsent && t == tlvConsent:
		if len(v) != consentLen {
			return false, ErrTLVSize
		}
		m.Consent = &Consent{
			Challenge: binary.BigEndian.Uint64(v[0:8]),
			ClientIP:  netip.AddrFrom4([4]byte(v[8:12])),
			Token:     binary.BigEndian.Uint64(v[12:20]),
			CLATD:     prefix96(v[20:32]),
			CLATB:     prefix96(v[32:44]),
		}
	case m.Type == TypeConsentReply && t == tlvConsent:
		if len(v) != consentReplyLen || v[12] > 1 {
			return false, ErrTLVSize
		}
		m.Consent = &Consent{
			Challenge: binary.BigEndian.Uint64(v[0:8]),
			ClientIP:  netip.AddrFrom4([4]byte(v[8:12])),
			Yes:       v[12] == 1,
		}
	default:
		return false, nil
	}
	if m.MAC != nil && (m.MAC[0]&1 == 1 || isZero(m.MAC)) {
		return false, ErrBadMAC
	}
	return true, nil
}

const (
	xlatClientLen   = 6 + 4 + 4 + 12 + 12
	roamClientLen   = 4 + 4 + 12 + 12
	consentLen      = 8 + 4 + 8 + 12 + 12
	consentReplyLen = 8 + 4 + 1
	authLen         = 4 + 16
)

func prefix96(b []byte) netip.Prefix {
	var a [16]byte
	copy(a[:12], b)
	return netip.PrefixFrom(netip.AddrFrom16(a), 96)
}

func isZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

package intercom

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
)

var (
	sender = netip.MustParseAddr("fddd:1337:1::1")
	mac    = net.HardwareAddr{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc}
	hdr    = Header{TTL: 1, Nonce: 0xdeadbeef, Sender: sender}
	key    = []byte("mesh roaming key")
)

func unhex(s string) []byte {
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		panic(err)
	}
	return b
}

// The header and TLVs byte for byte as the C l3roamd's assemble_header,
// assemble_seek_address, assemble_macinfo, assemble_platinfo and
// assemble_basicinfo write them (src/intercom.c).
const hdrHex = "00 01 %s 00 deadbeef fddd1337000100000000000000000001"

func withType(t string) string { return strings.Replace(hdrHex, "%s", t, 1) }

func TestWireLayoutOfTheCDaemonsMessages(t *testing.T) {
	for _, c := range []struct {
		name string
		got  []byte
		want string
	}{
		{"SEEK", Seek(hdr, netip.MustParseAddr("2001:db8::5")), withType("00") + "00 14 0000 20010db8000000000000000000000005"},
		{"CLAIM", Claim(hdr, mac), withType("01") + "00 08 123456789abc"},
		{"ACK", Ack(hdr, mac), withType("03") + "00 08 123456789abc"},
		{"INFO", Info(hdr, netip.MustParseAddr("fddd:1337:1338::"), mac, []netip.Addr{netip.MustParseAddr("2001:db8::10"), netip.MustParseAddr("fe80::1")}),
			withType("02") + "00 14 0000 fddd1337133800000000000000000000" + "01 28 123456789abc 20010db8000000000000000000000010 fe800000000000000000000000000001"},
	} {
		if want := unhex(c.want); !bytes.Equal(c.got, want) {
			t.Errorf("%s:\n got %x\nwant %x", c.name, c.got, want)
		}
	}
}

func TestParseReadsWhatItWrites(t *testing.T) {
	addrs := []netip.Addr{netip.MustParseAddr("2001:db8::10"), netip.MustParseAddr("10.130.0.10")}
	m, err := Parse(Info(hdr, netip.MustParseAddr("fddd:1337:1338::"), mac, addrs))
	if err != nil || m.Type != TypeInfo || m.Nonce != 0xdeadbeef || m.Sender != sender || m.MAC.String() != mac.String() ||
		len(m.Addrs) != 2 || m.Addrs[0] != addrs[0] || m.Addrs[1] != netip.AddrFrom16(addrs[1].As16()) || m.PLAT != netip.MustParseAddr("fddd:1337:1338::") {
		t.Fatalf("INFO: %+v %v", m, err)
	}
	m, err = Parse(Seek(hdr, addrs[0]))
	if err != nil || m.Type != TypeSeek || m.Address != addrs[0] {
		t.Fatalf("SEEK: %+v %v", m, err)
	}
	for _, typ := range []uint8{TypeClaim, TypeAck} {
		b := Claim(hdr, mac)
		if typ == TypeAck {
			b = Ack(hdr, mac)
		}
		if m, err := Parse(b); err != nil || m.Type != typ || m.MAC.String() != mac.String() {
			t.Fatalf("type %d: %+v %v", typ, m, err)
		}
	}
}

var xlat = &XLAT{
	MAC: mac, ClientIP: netip.MustParseAddr("10.130.0.10"), Lease: 3600,
	CLATD: netip.MustParsePrefix("fddd:1337:1337:1::/96"), PLATC: netip.MustParsePrefix("fddd:1337:1338:3::/96"),
	CLATB: netip.MustParsePrefix("fddd:1337:1337:2::/96"),
}

// docs/l3roamd-wire.md: INFO_XLAT and ROAM, byte for byte.
func TestWireLayoutOfTheXLATMessages(t *testing.T) {
	info := InfoXLAT(hdr, xlat, key, 1_800_000_000)
	want := unhex(withType("04") + "00 28 123456789abc 0a82000a 00000e10 fddd13371337000100000000 fddd13371338000300000000" + "ff 16 6b49d200")
	if !bytes.Equal(info[:len(want)], want) || len(info) != len(want)+16 {
		t.Errorf("INFO_XLAT:\n got %x\nwant %x + 16 bytes of HMAC", info, want)
	}
	roam := Roam(hdr, xlat, key, 1_800_000_000)
	want = unhex(withType("05") + "00 22 0a82000a 00000e10 fddd13371337000100000000 fddd13371337000200000000" + "ff 16 6b49d200")
	if !bytes.Equal(roam[:len(want)], want) || len(roam) != len(want)+16 {
		t.Errorf("ROAM:\n got %x\nwant %x + 16 bytes of HMAC", roam, want)
	}
	m, err := Parse(roam)
	if err != nil || m.XLAT == nil || m.XLAT.ClientIP != xlat.ClientIP || m.XLAT.Lease != 3600 || m.XLAT.CLATD != xlat.CLATD || m.XLAT.CLATB != xlat.CLATB {
		t.Fatalf("ROAM parsed: %+v %v", m, err)
	}
	m, err = Parse(info)
	if err != nil || m.XLAT == nil || m.XLAT.MAC.String() != mac.String() || m.XLAT.PLATC != xlat.PLATC || m.XLAT.CLATD != xlat.CLATD {
		t.Fatalf("INFO_XLAT parsed: %+v %v", m, err)
	}
}

// docs/l3roamd-wire.md: the handover token in INFO_XLAT and ROAM, CONSENT
// and CONSENT_REPLY, byte for byte; an older daemon skips the token's TLV.
func TestWireLayoutOfTheConsentMessages(t *testing.T) {
	tok := *xlat
	tok.Token = 0x0102030405060708
	roam := Roam(hdr, &tok, key, 1_800_000_000)
	want := unhex(withType("05") + "00 22 0a82000a 00000e10 fddd13371337000100000000 fddd13371337000200000000" + "01 0a 0102030405060708" + "ff 16 6b49d200")
	if !bytes.Equal(roam[:len(want)], want) || len(roam) != len(want)+16 {
		t.Errorf("ROAM with token:\n got %x\nwant %x + 16 bytes of HMAC", roam, want)
	}
	for _, b := range [][]byte{roam, InfoXLAT(hdr, &tok, key, 1)} {
		if m, err := Parse(b); err != nil || m.XLAT == nil || m.XLAT.Token != tok.Token {
			t.Errorf("type %d with token parsed: %+v %v", b[2], m, err)
		}
	}
	c := &Consent{Challenge: 0x1112131415161718, ClientIP: xlat.ClientIP, Token: tok.Token, CLATD: xlat.CLATD, CLATB: xlat.CLATB}
	ask := ConsentAsk(hdr, c, key, 1_800_000_000)
	want = unhex(withType("06") + "00 2e 1112131415161718 0a82000a 0102030405060708 fddd13371337000100000000 fddd13371337000200000000" + "ff 16 6b49d200")
	if !bytes.Equal(ask[:len(want)], want) || len(ask) != len(want)+16 {
		t.Errorf("CONSENT:\n got %x\nwant %x + 16 bytes of HMAC", ask, want)
	}
	if m, err := Parse(ask); err != nil || m.Consent == nil || *m.Consent != *c || m.Verify(key, 1_800_000_000, 30) != nil {
		t.Errorf("CONSENT parsed: %+v %v", m, err)
	}
	reply := ConsentReply(hdr, &Consent{Challenge: c.Challenge, ClientIP: c.ClientIP, Yes: true}, key, 1_800_000_000)
	want = unhex(withType("07") + "00 0f 1112131415161718 0a82000a 01" + "ff 16 6b49d200")
	if !bytes.Equal(reply[:len(want)], want) || len(reply) != len(want)+16 {
		t.Errorf("CONSENT_REPLY:\n got %x\nwant %x + 16 bytes of HMAC", reply, want)
	}
	if m, err := Parse(reply); err != nil || m.Consent == nil || !m.Consent.Yes || m.Consent.Challenge != c.Challenge {
		t.Errorf("CONSENT_REPLY parsed: %+v %v", m, err)
	}
	reply[24+2+12] = 2 // neither yes nor no
	if _, err := Parse(reply); !errors.Is(err, ErrTLVSize) {
		t.Errorf("CONSENT_REPLY with verdict 2: %v", err)
	}
	if _, err := Parse(ask[:24+2+consentLen-1]); !errors.Is(err, ErrTLV) {
		t.Errorf("CONSENT cut short: %v", err)
	}
	if _, err := Parse(append(append([]byte(nil), roam[:24+34]...), 1, 9, 1, 2, 3, 4, 5, 6, 7)); !errors.Is(err, ErrTLVSize) {
		t.Errorf("token of 7 bytes: %v", err)
	}
}

func TestVerifyRejectsForgedStaleAndUnsigned(t *testing.T) {
	const now = 1_800_000_000
	good := Roam(hdr, xlat, key, now)
	check := func(name string, b []byte, k []byte, at uint32, want error) {
		t.Helper()
		m, err := Parse(b)
		if err != nil {
			t.Fatalf("%s: parse: %v", name, err)
		}
		if err := m.Verify(k, at, 30); !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", name, err, want)
		}
	}
	check("good", good, key, now+29, nil)
	ttl := append([]byte(nil), good...)
	ttl[1] = 7 // TTL may change on the way
	check("other TTL", ttl, key, now, nil)
	check("wrong key", good, []byte("guess"), now, ErrBadAuth)
	check("replayed 31 s later", good, key, now+31, ErrStaleAuth)
	check("clock ahead", good, key, now-31, ErrStaleAuth)
	for _, i := range []int{8, 24 + 2 + 4, 24 + 2 + 8, len(good) - 17, len(good) - 1} {
		forged := append([]byte(nil), good...)
		forged[i] ^= 1 // sender, lease, CLATD, time, sum
		check("byte "+string(rune('0'+i%10)), forged, key, now, ErrBadAuth)
	}
	unsigned := good[:len(good)-2-authLen]
	check("unsigned", unsigned, key, now, ErrNoAuth)
}

// Malformed packets are errors with a reason, never a panic or a loop
// (the C daemon loops on a TLV it cannot skip).
func TestParseRejectsMalformedPackets(t *testing.T) {
	claim := Claim(hdr, mac)
	for _, c := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"short header", claim[:23], ErrShort},
		{"version 1", append([]byte{1}, claim[1:]...), ErrVersion},
		{"unknown type", append(append([]byte{0, 1, 9}, claim[3:24]...), 0, 8, 1, 2, 3, 4, 5, 6), ErrUnknownMsg},
		{"TLV length 0", append(append([]byte(nil), claim[:24]...), 0, 0, 1, 2, 3, 4, 5, 6), ErrTLV},
		{"TLV length 1", append(append([]byte(nil), claim[:24]...), 0, 1), ErrTLV},
		{"TLV past the end", append(append([]byte(nil), claim[:24]...), 0, 9, 1, 2, 3, 4, 5, 6), ErrTLV},
		{"one byte TLV", append(append([]byte(nil), claim[:24]...), 0), ErrTLV},
		{"CLAIM without MAC", claim[:24], ErrMissing},
		{"CLAIM MAC of 5", append(append([]byte(nil), claim[:24]...), 0, 7, 1, 2, 3, 4, 5), ErrTLVSize},
		{"multicast MAC", Claim(hdr, net.HardwareAddr{1, 0, 0x5e, 0, 0, 1}), ErrBadMAC},
		{"zero MAC", Claim(hdr, net.HardwareAddr{0, 0, 0, 0, 0, 0}), ErrBadMAC},
		{"INFO_BASIC of 7", append(append([]byte(nil), Info(hdr, sender, mac, nil)[:24+20]...), 1, 9, 1, 2, 3, 4, 5, 6, 7), ErrTLVSize},
		{"ROAM cut", Roam(hdr, xlat, key, 1)[:40], ErrTLV},
		{"AUTH not last", append(Roam(hdr, xlat, key, 1), 0, 2), ErrTLVSize},
	} {
		m, err := Parse(c.b)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v (%+v), want %v", c.name, err, m, c.want)
		}
	}
	// An unknown TLV is skipped by its length.
	b := append(append(append([]byte(nil), claim[:24]...), 7, 4, 0xaa, 0xbb), claim[24:]...)
	if m, err := Parse(b); err != nil || m.MAC.String() != mac.String() {
		t.Errorf("unknown TLV: %v", err)
	}
	// INFO with 16 addresses cannot be encoded: Info stops at 15.
	many := make([]netip.Addr, 16)
	for i := range many {
		many[i] = netip.AddrFrom16([16]byte{0x20, 1, 15: byte(i)})
	}
	if m, err := Parse(Info(hdr, sender, mac, many)); err != nil || len(m.Addrs) != MaxInfoAddrs {
		t.Errorf("INFO of 16 addresses: %v", err)
	}
}

package l3roamd

import (
	"bytes"
	"net/netip"
	"testing"
)

// RFC 8966 section 4.2 (header: magic 42, version 2, body length) and
// 4.6.10 (Seqno Request: type 10, length, AE 2 = IPv6, prefix length,
// seqno, hop count, reserved, router-id, the prefix's bytes: all 16 for a
// /128).
func TestBabelSeqnoRequestLayout(t *testing.T) {
	a, b := netip.MustParseAddr("fd42:1ab:0:1::10"), netip.MustParseAddr("fddd:1337:2::1034:56ff:fe78:9abc")
	got := babelSeqnoRequest([]netip.Addr{a, b})
	tlv := func(x netip.Addr) []byte {
		return append([]byte{10, 30, 2, 128, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0}, x.AsSlice()...)
	}
	want := append(append([]byte{42, 2, 0, 64}, tlv(a)...), tlv(b)...)
	if !bytes.Equal(got, want) {
		t.Fatalf("got  %x\nwant %x", got, want)
	}
}

package l3roamd

import (
	"bytes"
	"net/netip"
	"testing"
)

// RFC 8966 section 4.2 (header: magic 42, version 2, body length) and
// 4.6.9 (Route Request: type 9, length, AE 2 = IPv6, prefix length, the
// prefix's bytes: all 16 for a /128).
func TestBabelRouteRequestLayout(t *testing.T) {
	a, b := netip.MustParseAddr("fd42:1ab:0:1::10"), netip.MustParseAddr("fddd:1337:2::1034:56ff:fe78:9abc")
	got := babelRouteRequest([]netip.Addr{a, b})
	want := append([]byte{42, 2, 0, 40, 9, 18, 2, 128}, a.AsSlice()...)
	want = append(append(want, 9, 18, 2, 128), b.AsSlice()...)
	if !bytes.Equal(got, want) {
		t.Fatalf("got  %x\nwant %x", got, want)
	}
}

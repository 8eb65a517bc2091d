package intercom

import (
	"net/netip"
	"testing"
)

// FuzzParse: any packet parses or fails with an error, never panics or
// hangs; what parses verifies without panicking, and a parsed INFO
// re-encodes to a packet that parses to the same client.
func FuzzParse(f *testing.F) {
	f.Add(Seek(hdr, netip.MustParseAddr("2001:db8::5")))
	f.Add(Claim(hdr, mac))
	f.Add(Ack(hdr, mac))
	f.Add(Info(hdr, sender, mac, []netip.Addr{sender}))
	f.Add(InfoXLAT(hdr, xlat, key, 1))
	f.Add(Roam(hdr, xlat, key, 1))
	tok := *xlat
	tok.Token = 42
	f.Add(Roam(hdr, &tok, key, 1))
	c := &Consent{Challenge: 1, ClientIP: xlat.ClientIP, Token: 42, CLATD: xlat.CLATD, CLATB: xlat.CLATB, Yes: true}
	f.Add(ConsentAsk(hdr, c, key, 1))
	f.Add(ConsentReply(hdr, c, key, 1))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		m.Verify(key, 1, 30)
		if m.Type == TypeInfo {
			again, err := Parse(Info(m.Header, m.PLAT, m.MAC, m.Addrs))
			if err != nil || again.MAC.String() != m.MAC.String() || len(again.Addrs) != len(m.Addrs) {
				t.Fatalf("INFO does not round-trip: %v", err)
			}
		}
	})
}

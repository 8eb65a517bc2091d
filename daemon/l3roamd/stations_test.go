package l3roamd

import (
	"testing"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
)

func stationMsg(t *testing.T, cmd uint8, attrs func(*netlink.AttributeEncoder)) genetlink.Message {
	ae := netlink.NewAttributeEncoder()
	attrs(ae)
	b, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return genetlink.Message{Header: genetlink.Header{Command: cmd}, Data: b}
}

// nl80211's NEW_STATION and DEL_STATION as a driver sends them
// (nl80211_send_station: NL80211_ATTR_IFINDEX, NL80211_ATTR_MAC, then the
// station's info, which is skipped); anything else, or a message without
// its interface or a 6-byte MAC, is not a station event.
func TestStationEventsAreRead(t *testing.T) {
	mac := []byte{0x02, 0xc1, 0x1e, 0, 0, 0x0a}
	full := func(ae *netlink.AttributeEncoder) {
		ae.Uint32(nl80211AttrIfindex, 7)
		ae.Bytes(nl80211AttrMAC, mac)
		ae.Uint32(46, 1)                 // NL80211_ATTR_GENERATION
		ae.Bytes(21, []byte{1, 2, 3, 4}) // NL80211_ATTR_STA_INFO (nested), skipped
	}
	for _, cmd := range []uint8{nl80211CmdNewStation, nl80211CmdDelStation} {
		got, ifindex, m, ok := stationEvent(stationMsg(t, cmd, full))
		if !ok || got != cmd || ifindex != 7 || m.String() != "02:c1:1e:00:00:0a" {
			t.Errorf("command %d: %d %d %v %v", cmd, got, ifindex, m, ok)
		}
	}
	for name, msg := range map[string]genetlink.Message{
		"another command": stationMsg(t, 18 /* GET_STATION */, full),
		"no interface":    stationMsg(t, nl80211CmdNewStation, func(ae *netlink.AttributeEncoder) { ae.Bytes(nl80211AttrMAC, mac) }),
		"short MAC": stationMsg(t, nl80211CmdDelStation, func(ae *netlink.AttributeEncoder) {
			ae.Uint32(nl80211AttrIfindex, 7)
			ae.Bytes(nl80211AttrMAC, mac[:5])
		}),
		"truncated": {Header: genetlink.Header{Command: nl80211CmdNewStation}, Data: []byte{8, 0, 3}},
	} {
		if _, _, _, ok := stationEvent(msg); ok {
			t.Errorf("%s: taken for a station event", name)
		}
	}
}

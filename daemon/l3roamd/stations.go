package l3roamd

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	vnl "github.com/vishvananda/netlink"
)

// Wi-Fi station events, as the C daemon's wifistations.c follows them: an
// access point's driver tells nl80211's "mlme" group when a station
// associates (NEW_STATION) and when it leaves (DEL_STATION). A client that
// associates is learned at once (the bridge learns it only from its first
// frame), and one that leaves is marked gone at once, forgotten after
// -client-gone-grace unless it shows up again (the bridge's entry would
// keep it for its ageing time, 300 s). Only stations on a port of the
// client bridge (Gluon's client0, client1) count: the mesh's 802.11s
// interfaces report their peers the same way.
//
// nl80211 numbers (include/uapi/linux/nl80211.h).
const (
	nl80211CmdNewStation = 19
	nl80211CmdDelStation = 20
	nl80211AttrIfindex   = 3
	nl80211AttrMAC       = 6
)

// stationEvent reads a NEW_STATION or DEL_STATION message: the interface
// and the station's MAC; ok is false for anything else.
func stationEvent(m genetlink.Message) (cmd uint8, ifindex int, mac net.HardwareAddr, ok bool) {
	if m.Header.Command != nl80211CmdNewStation && m.Header.Command != nl80211CmdDelStation {
		return 0, 0, nil, false
	}
	ad, err := netlink.NewAttributeDecoder(m.Data)
	if err != nil {
		return 0, 0, nil, false
	}
	for ad.Next() {
		switch ad.Type() {
		case nl80211AttrIfindex:
			ifindex = int(ad.Uint32())
		case nl80211AttrMAC:
			if b := ad.Bytes(); len(b) == 6 {
				mac = net.HardwareAddr(append([]byte(nil), b...))
			}
		}
	}
	if ad.Err() != nil || ifindex == 0 || mac == nil {
		return 0, 0, nil, false
	}
	return m.Header.Command, ifindex, mac, true
}

// watchStations follows the station events until stop; a node without
// nl80211 (no radio, or the lab) has none, and says so once.
func (d *daemon) watchStations() {
	defer d.wg.Done()
	c, err := genetlink.Dial(nil)
	if err != nil {
		slog.Warn("Wi-Fi station events: no generic netlink", "err", err)
		return
	}
	fam, err := c.GetFamily("nl80211")
	if err != nil {
		c.Close()
		if errors.Is(err, os.ErrNotExist) {
			slog.Info("no nl80211: clients are learned from the bridge only")
		} else {
			slog.Warn("Wi-Fi station events", "err", err)
		}
		return
	}
	joined := false
	for _, g := range fam.Groups {
		if g.Name == "mlme" {
			joined = c.JoinGroup(g.ID) == nil
		}
	}
	if !joined {
		c.Close()
		slog.Warn("Wi-Fi station events: cannot join nl80211's mlme group")
		return
	}
	go func() {
		<-d.done
		c.Close()
	}()
	for {
		msgs, _, err := c.Receive()
		if err != nil {
			select {
			case <-d.done:
				return
			default:
				d.inc("station_event_errors")
				continue
			}
		}
		for _, m := range msgs {
			cmd, ifindex, mac, ok := stationEvent(m)
			if !ok || !d.isClientPort(ifindex) {
				continue
			}
			if cmd == nl80211CmdNewStation {
				d.inc("stations_associated")
				d.learn(mac, netip.Addr{})
			} else {
				d.inc("stations_left")
				d.markGone(mac)
			}
		}
	}
}

// isClientPort reports whether ifindex is the client device or a port of
// the client bridge.
func (d *daemon) isClientPort(ifindex int) bool {
	if d.isClientDev(ifindex) {
		return true
	}
	l, err := vnl.LinkByIndex(ifindex)
	if err != nil {
		return false
	}
	br, err := vnl.LinkByName(d.c.clientBridge)
	return err == nil && l.Attrs().MasterIndex == br.Attrs().Index
}

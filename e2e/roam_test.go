package e2e

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gluon-464xlat/gluon-464xlat/intercom"

	"github.com/gluon-464xlat/gluon-464xlat/internal/ctlsock"
	"github.com/gluon-464xlat/gluon-464xlat/internal/netlab"
	"github.com/gluon-464xlat/gluon-464xlat/internal/status"
)

// roamOpts varies the roaming lab.
type roamOpts struct {
	dhcp   bool // dnsmasq on both nodes' client bridges, the client without a static IPv4
	legacy bool // l3roamd and platd on ipset + ip6tables-legacy instead of nftables
}

// l3roamdLegacy selects l3roamd's legacy backend.
var l3roamdLegacy = []string{"-backend", "iptables", "-ip6tables", "/usr/sbin/ip6tables-legacy"}

// startRoam is the mesh with a client that can roam between node1 and
// node2: clatd on both nodes for the same client network, node1 on PLAT P1
// and node2 on P2 (each its nearest; set statically, prefixd is tested
// elsewhere), and l3roamd on all four mesh nodes, the exits accepting ROAM.
func (l *meshLab) startRoam(t *testing.T, o roamOpts) {
	if o.legacy {
		l.platdExtra = iptablesLegacy
	}
	l.startMesh(t)
	for _, n := range []struct{ ns, clat, plat string }{{l.node1, meshCLAT1, meshP1}, {l.node2, meshCLAT2, meshP2}} {
		l.daemon(t, n.ns, "clatd", "-clat-prefix", n.clat, "-plat-prefix", n.plat, "-client-net", "10.130.0.0/16", "-client-dev", "br-client")
	}
	l.waitConverged(t)
	key := filepath.Join(l.Dir, "roam.key")
	os.WriteFile(key, []byte("the roaming key of the lab\n"), 0o600)
	common := []string{"-node-client-prefix", meshNodeCli, "-client-prefix", meshClients6, "-clat-range", "fddd:1337:1337::/48",
		"-plat-range", meshPLATRange, "-roam-key-file", key}
	for i, n := range []struct {
		ns   string
		args []string
	}{
		{l.node1, []string{"-client-dev", "br-client", "-mesh-ifs", "m-x1,m-x1b,m-n2", "-clat-prefix", meshCLAT1, "-plat-prefix", meshP1}},
		{l.node2, []string{"-client-dev", "br-client", "-mesh-ifs", "m-n1,m-x2", "-clat-prefix", meshCLAT2, "-plat-prefix", meshP2}},
		{l.exit1, []string{"-client-dev", "", "-mesh-ifs", "m-n1,m-n1b", "-own-plat", meshP1}},
		{l.exit2, []string{"-client-dev", "", "-mesh-ifs", "m-n2", "-own-plat", meshP2}},
	} {
		args := append(append([]string{"-node-ip", fmt.Sprintf("%s%d", meshNodeIPs, i+1)}, common...), n.args...)
		if o.legacy {
			args = append(args, l3roamdLegacy...)
		}
		if o.dhcp && i < 2 {
			args = append(args, "-dhcp-leases", l.dnsmasq(t, n.ns))
		}
		l.daemon(t, n.ns, "l3roamd", args...)
	}
	// The node IPs must be known across the mesh before anyone claims.
	if !netlab.WaitFor(20*time.Second, func() bool {
		out, _ := l.Run(l.node2, "ip", "-6", "route", "show", meshNodeIPs+"1")
		x, _ := l.Run(l.exit1, "ip", "-6", "route", "show", meshNodeIPs+"2")
		return out != "" && x != ""
	}) {
		t.Fatal("node IPs not announced")
	}
	if o.dhcp {
		l.Must(l.client, "ip", "addr", "del", "10.130.0.10/16", "dev", "c0")
	}
}

// dnsmasq serves DHCPv4 on ns's client bridge as on a Gluon node (the
// whole client network, authoritative, short leases) and returns its lease
// file.
func (l *meshLab) dnsmasq(t *testing.T, ns string) string {
	leases := filepath.Join(l.Dir, "leases-"+ns)
	l.Start(ns, "dnsmasq-"+ns, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--interface=br-client",
		"--bind-interfaces", "--dhcp-range=10.130.0.100,10.130.0.200,255.255.0.0,2m", "--dhcp-authoritative",
		"--dhcp-option=3,10.130.0.1", "--dhcp-leasefile="+leases, "--pid-file="+filepath.Join(l.Dir, "dnsmasq-"+ns+".pid"), "--log-dhcp")
	return leases
}

// newRoamLabAtNode1 is the roaming lab with its IPv4 client (static
// address) reaching the internet through node1, whose l3roamd serves it.
func newRoamLabAtNode1(t *testing.T, o roamOpts) *meshLab {
	l := newMeshLabWith(t, true)
	l.startRoam(t, o)
	l.reach(t, l.client, "198.51.100.1")
	if !netlab.WaitFor(10*time.Second, func() bool { return l.servesClient(t, l.node1) }) {
		t.Fatal("node1's l3roamd did not learn the client")
	}
	return l
}

// startUDPSession has the client send a datagram every 20 ms for secs
// seconds to an echo server that logs when its sender changes. The check
// it returns fails unless the session ends where it began (the server sees
// the same sender: the same PLAT, the same NAT mapping) and echoes still
// came back 3 s after the client moved. UDP and ICMP echo are what clatd's
// fast path sends direct: a roamed client's, which l3roamd rewrites in
// netfilter, must not be.
func (l *meshLab) startUDPSession(t *testing.T, secs int) func(t *testing.T, moved time.Time) {
	echo := l.StartServer(l.inet, "udp-echo-log", netlab.Helper("udp-echo-log", "198.51.100.1:5004")...)
	stream := l.Start(l.client, "udp-session", netlab.Helper("udp-stream", "198.51.100.1:5004", strconv.Itoa(secs))...)
	return func(t *testing.T, moved time.Time) {
		t.Helper()
		netlab.WaitFor(time.Duration(secs+5)*time.Second, stream.Exited)
		var from []string
		for _, line := range strings.Split(echo.Log(), "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[0] == "from" {
				from = append(from, f[1])
			}
		}
		late := 0
		for _, line := range strings.Split(stream.Log(), "\n") {
			var sec, usec int64
			if _, err := fmt.Sscanf(line, "[%d.%d]", &sec, &usec); err == nil && time.Unix(sec, usec*1000).After(moved.Add(3*time.Second)) {
				late++
			}
		}
		if len(from) == 0 || from[len(from)-1] != from[0] || late < 25 {
			t.Errorf("the UDP session across the roam: the server saw it from %v (it must end where it began), %d echoes came back 3 s after the move\nclatd node2: %s",
				from, late, l.procs["clatd@"+l.node2].Log())
		}
	}
}

// reach waits (20 s at most) until a ping from ns to addr is answered: the
// lab is up, but the first packets of a fresh client may still be what
// makes l3roamd learn it and Babel carry its route.
func (l *meshLab) reach(t *testing.T, ns, addr string) {
	t.Helper()
	if !netlab.WaitFor(20*time.Second, func() bool {
		_, err := l.Run(ns, "ping", "-c", "1", "-W", "1", addr)
		return err == nil
	}) {
		out, _ := l.Run(ns, "ping", "-c", "2", "-W", "1", addr)
		t.Fatalf("%s does not reach %s:\n%s\nnode1's clients: %v", ns, addr, out, l.roamClients(t, l.node1))
	}
}

// moveClient moves the client's port from one node's client bridge to the
// other's, as a client walking from one access point to the next.
func (l *meshLab) moveClient(t *testing.T, from, to string) {
	t.Helper()
	l.T(t).Must(from, "ip", "link", "set", "cl-port", "netns", to)
	l.T(t).Must(to, "ip", "link", "set", "cl-port", "master", "br-client", "up")
}

// roamClient is one client of l3roamd's get_clients, with its MAC.
type roamClient struct {
	MAC string
	status.Client
}

func (l *meshLab) roamClients(t *testing.T, ns string) []roamClient {
	out, err := ctlsock.Query(l.sock["l3roamd@"+ns], "get_clients")
	var cl status.Clients
	if err != nil || json.Unmarshal([]byte(out), &cl) != nil || cl.Count != len(cl.List) {
		t.Fatalf("get_clients on %s: %v %s", ns, err, out)
	}
	var list []roamClient
	for mac, c := range cl.List {
		list = append(list, roamClient{mac, c})
	}
	return list
}

func (l *meshLab) servesClient(t *testing.T, ns string) bool {
	for _, c := range l.roamClients(t, ns) {
		if c.MAC == clientMAC {
			return true
		}
	}
	return false
}

// The seed's "l3roamd 464xlat specific roaming behaviour": the client
// keeps its IPv4 and its running TCP connection when it moves to a node
// with another CLAT prefix and another PLAT.
func TestRoamKeepsIPv4SessionsAcrossNodes(t *testing.T) {
	l := newRoamLabAtNode1(t, roamOpts{})
	// 8 MB at 1 MB/s: the roam happens in the middle.
	fetch, progress := startDownload(t, l.Lab, l.inet, l.client, "slow", "198.51.100.1:5001", 8000000, 1000000)
	ping := l.Start(l.client, "ping", "ping", "-i", "0.2", "-c", "40", "198.51.100.1")
	udpSession := l.startUDPSession(t, 20)
	receivedMore(t, fetch, progress, 1500000)

	// docs/l3roamd-security.md, consent: node2 has the site's key (every
	// image has it) but node1 did not hand it the client. Its signed ROAM,
	// from its own CLAT address, asks exit1 to send the client's sessions
	// to node2; exit1 asks node1, which says no, and the download keeps
	// flowing to the client at node1.
	x1 := statusOf(t, l.sock["l3roamd@"+l.exit1])["counters"].(map[string]any)
	key, _ := os.ReadFile(filepath.Join(l.Dir, "roam.key"))
	forged := &intercom.XLAT{ClientIP: netip.MustParseAddr("10.130.0.10"), Lease: 3600,
		CLATD: netip.MustParsePrefix(meshCLAT1), CLATB: netip.MustParsePrefix(meshCLAT2), Token: 0x5eed}
	roam := intercom.Roam(intercom.Header{TTL: 1, Nonce: 11, Sender: netip.MustParseAddr(meshNodeIPs + "2")}, forged, bytes.TrimSpace(key), uint32(time.Now().Unix()))
	l.T(t).Must(l.node2, netlab.Helper("udp-send", "["+strings.TrimSuffix(meshCLAT2, "0:0/96")+"c000:2]:0",
		"["+strings.TrimSuffix(meshP1, "0:0/96")+"c000:1]:5523", hex.EncodeToString(roam))...)
	var c1 map[string]any
	if !netlab.WaitFor(5*time.Second, func() bool {
		c1 = statusOf(t, l.sock["l3roamd@"+l.exit1])["counters"].(map[string]any)
		return n(c1, "dropped_roam_no_consent") > n(x1, "dropped_roam_no_consent")
	}) {
		t.Fatalf("exit1 did not refuse node2's ROAM for lack of node1's consent: %v", c1)
	}
	if r, _ := statusOf(t, l.sock["l3roamd@"+l.exit1])["plat_roamed_clients"].([]any); len(r) != 0 || n(c1, "roams_accepted") != n(x1, "roams_accepted") {
		t.Fatalf("exit1 moved the sessions on node2's word alone: %v", r)
	}
	receivedMore(t, fetch, progress, 500000) // still flowing to the client at node1

	// Handed the client by a real CLAIM, node2 can.
	moved := time.Now()
	l.moveClient(t, l.node1, l.node2)
	if !netlab.WaitFor(10*time.Second, func() bool { return l.servesClient(t, l.node2) && !l.servesClient(t, l.node1) }) {
		t.Fatalf("node2 did not take the client over: node1 %v node2 %v", l.roamClients(t, l.node1), l.roamClients(t, l.node2))
	}
	for _, c := range l.roamClients(t, l.node2) {
		if c.MAC == clientMAC && (c.IPv4 != "10.130.0.10" || c.CLATD != meshCLAT1 || c.PLATC != meshP1 || !c.Roamed) {
			t.Errorf("node2's view of the roamed client: %+v", c)
		}
	}
	if !finished(fetch, 8000000, 30*time.Second) {
		t.Fatalf("the running download across the roam: %s\nl3roamd node2: %s\nl3roamd exit1: %s", fetch.Log(),
			l.procs["l3roamd@"+l.node2].Log(), l.procs["l3roamd@"+l.exit1].Log())
	}
	netlab.WaitFor(15*time.Second, ping.Exited)
	t.Logf("ping across the roam: %s", lastLine(ping.Log(), "packet loss"))
	udpSession(t, moved)

	// The old PLAT keeps the session, through the new node's CLAT prefix.
	st := statusOf(t, l.sock["l3roamd@"+l.exit1])
	if r, _ := st["plat_roamed_clients"].([]any); len(r) != 1 {
		t.Errorf("exit1 holds %v roamed clients, want 1", st["plat_roamed_clients"])
	}
	// New connections of the client still work (through its old PLAT).
	if out, _ := l.Run(l.client, "ping", "-c", "2", "-W", "2", "198.51.100.1"); !strings.Contains(out, " 0% packet loss") {
		n2, _ := l.Run(l.node2, "nft", "list", "table", "inet", "l3roamd")
		x1, _ := l.Run(l.exit1, "nft", "list", "table", "inet", "l3roamd")
		ct, _ := l.Run(l.exit1, "conntrack", "-L")
		c2, _ := ctlsock.Query(l.sock["clatd@"+l.node2], "status")
		t.Fatalf("ping after roaming:\n%s\nnode2:\n%s\nexit1:\n%s\nconntrack exit1:\n%s\nclatd2 %s", out, n2, x1, ct, c2)
	}

	t.Run("forged ROAM from the client is refused", func(t *testing.T) {
		before := statusOf(t, l.sock["l3roamd@"+l.exit1])
		dropsBefore := l.clientPortDrops(t, l.node2)
		// Divert the client's sessions back to node1, lease 0: with a
		// guessed key, from the client's own address and posing as node2.
		x := &intercom.XLAT{ClientIP: netip.MustParseAddr("10.130.0.10"), Lease: 0,
			CLATD: netip.MustParsePrefix(meshCLAT1), CLATB: netip.MustParsePrefix(meshCLAT1)}
		h := intercom.Header{TTL: 1, Nonce: 7, Sender: netip.MustParseAddr(meshNodeIPs + "2")}
		forged := hex.EncodeToString(intercom.Roam(h, x, []byte("guessed key guessed key"), uint32(time.Now().Unix())))
		unsigned := hex.EncodeToString(intercom.Roam(h, x, nil, uint32(time.Now().Unix()))[:24+34])
		plat := "[" + strings.TrimSuffix(meshP1, "0:0/96") + "c000:1]:5523"
		for _, src := range []string{"[" + meshClient6 + "]:5523", "[" + strings.TrimSuffix(meshCLAT2, "0:0/96") + "c000:2]:5523"} {
			for _, b := range []string{forged, unsigned} {
				l.T(t).Must(l.client, netlab.Helper("udp-send", src, plat, b)...)
			}
		}
		c0 := before["counters"].(map[string]any)
		var c1 map[string]any
		netlab.WaitFor(5*time.Second, func() bool {
			c1 = statusOf(t, l.sock["l3roamd@"+l.exit1])["counters"].(map[string]any)
			return n(c1, "dropped_from_client_address")-n(c0, "dropped_from_client_address") >= 2
		})
		// refused for their source before their signature is looked at: no
		// client address speaks for a node
		if n(c1, "dropped_from_client_address")-n(c0, "dropped_from_client_address") != 2 {
			t.Errorf("exit1 did not refuse the two forgeries from the client's address: %v -> %v", c0, c1)
		}
		if n(c1, "roams_accepted") != n(c0, "roams_accepted") {
			t.Errorf("a forged ROAM was accepted")
		}
		if d := l.clientPortDrops(t, l.node2) - dropsBefore; d < 2 {
			t.Errorf("node2's client port let %v spoofed packets from its own CLAT prefix through", 2-d)
		}
		if out := l.T(t).Must(l.client, "ping", "-c", "2", "-W", "2", "198.51.100.1"); !strings.Contains(out, " 0% packet loss") {
			t.Fatalf("the client lost its IPv4:\n%s", out)
		}
	})

	t.Run("l3roamd killed mid-stream and restarted loses nothing", func(t *testing.T) {
		fetch, progress := startDownload(t, l.Lab, l.inet, l.client, "restart", "198.51.100.1:5003", 6000000, 1000000)
		receivedMore(t, fetch, progress, 1000000)
		tables := map[string]string{}
		for _, ns := range []string{l.node2, l.exit1} {
			tables[ns] = l.roamTable(t, ns)
			l.procs["l3roamd@"+ns].Signal(syscall.SIGKILL)
			netlab.WaitFor(5*time.Second, l.procs["l3roamd@"+ns].Exited)
		}
		// the kernel carries the roamed session without the daemons
		receivedMore(t, fetch, progress, 500000)
		for _, ns := range []string{l.node2, l.exit1} {
			l.daemon(t, ns, "l3roamd", l.args["l3roamd@"+ns]...)
			if got := l.roamTable(t, ns); got != tables[ns] {
				t.Errorf("%s: table after the restart differs:\n%s\nbefore:\n%s", ns, got, tables[ns])
			}
		}
		if st := statusOf(t, l.sock["l3roamd@"+l.node2]); st["clients_464xlat"] != float64(1) {
			t.Errorf("node2 after the restart: %v", st)
		}
		if !finished(fetch, 6000000, 30*time.Second) {
			t.Fatalf("download across the l3roamd restarts: %s", fetch.Log())
		}
	})

	t.Run("roaming back through a flood of forged intercom", func(t *testing.T) {
		fetch, progress := startDownload(t, l.Lab, l.inet, l.client, "back", "198.51.100.1:5002", 5000000, 1000000)
		receivedMore(t, fetch, progress, 1500000)
		// 10 s of forged CLAIM, INFO, SEEK, ROAM and INFO_XLAT at full
		// rate at node2, from the client's port and from a mesh peer
		// (node1); the client roams back to node1 in the middle of it.
		d2 := l.procs["l3roamd@"+l.node2]
		rssBefore, logBefore := d2.RSS(), strings.Count(d2.Log(), "\n")
		node2 := "[" + meshNodeIPs + "2]:5523"
		floods := []*netlab.Proc{
			l.Start(l.client, "flood-client", netlab.Helper("intercom-flood", "["+meshClient6+"]:0", node2, meshClients6, "10")...),
			l.Start(l.node1, "flood-mesh", netlab.Helper("intercom-flood", "["+meshNodeIPs+"1]:0", node2, meshClients6, "10")...),
		}
		time.Sleep(3 * time.Second) // the roam in the middle of the flood
		l.moveClient(t, l.node2, l.node1)
		if !netlab.WaitFor(10*time.Second, func() bool { return l.servesClient(t, l.node1) && !l.servesClient(t, l.node2) }) {
			t.Fatal("node1 did not take the client back")
		}
		if !finished(fetch, 5000000, 30*time.Second) {
			t.Fatalf("download across the roam back: %s", fetch.Log())
		}
		for _, f := range floods {
			if !netlab.WaitFor(20*time.Second, f.Exited) || !strings.Contains(f.Log(), "sent ") {
				t.Fatalf("%s: %s", f.Name, f.Log())
			}
			t.Logf("%s: %s", f.Name, strings.TrimSpace(f.Log()))
		}
		// bounded memory and log: refusals are counted always, logged at most once a second
		rssAfter, logLines := d2.RSS(), strings.Count(d2.Log(), "\n")-logBefore
		c := statusOf(t, l.sock["l3roamd@"+l.node2])["counters"]
		t.Logf("node2's l3roamd under the flood: RSS %d -> %d KiB, %d log lines; counters %v", rssBefore, rssAfter, logLines, c)
		if rssAfter > rssBefore+16*1024 {
			t.Errorf("RSS grew from %d to %d KiB under the flood", rssBefore, rssAfter)
		}
		if logLines > 40 {
			t.Errorf("%d log lines in the flood's ~15 s:\n%s", logLines, tailOf(d2.Log(), 3000))
		}
		// Home again: the PLAT forgets the detour.
		if !netlab.WaitFor(5*time.Second, func() bool {
			r, _ := statusOf(t, l.sock["l3roamd@"+l.exit1])["plat_roamed_clients"].([]any)
			return len(r) == 0
		}) {
			t.Errorf("exit1 still maps the client: %v", statusOf(t, l.sock["l3roamd@"+l.exit1])["plat_roamed_clients"])
		}
	})
}

// An IPv6 client keeps its address and its running TCP connection: the
// node it roams to routes its addresses (from INFO) and Babel carries the
// host route there; the old node drops its own.
func TestRoamKeepsIPv6Sessions(t *testing.T) {
	l := newMeshLabWith(t, true)
	l.startRoam(t, roamOpts{})
	server := "[" + meshNodeIPs + "4]:5004" // exit2's node address: a host across the mesh
	// The client's IPv6 must be routed to node1 first: its first packets make
	// node1's l3roamd learn it, and the replies need exit2's node address and
	// then the client's host route carried across the mesh, so the first
	// pings may go unanswered.
	l.reach(t, l.client, meshNodeIPs+"4")
	if !netlab.WaitFor(15*time.Second, func() bool {
		out, _ := l.Run(l.exit2, "ip", "-6", "route", "show", meshClient6)
		return strings.Contains(out, "proto babel")
	}) {
		t.Fatalf("node1 did not announce the client's IPv6 address: %v", l.roamClients(t, l.node1))
	}
	fetch, progress := startDownload(t, l.Lab, l.exit2, l.client, "v6", server, 6000000, 1000000)
	receivedMore(t, fetch, progress, 1500000)
	l.moveClient(t, l.node1, l.node2)
	var now, old string
	if !netlab.WaitFor(10*time.Second, func() bool {
		now, _ = l.Run(l.node2, "ip", "-6", "route", "show", meshClient6)
		old, _ = l.Run(l.node1, "ip", "-6", "route", "show", meshClient6)
		// node1 soon learns the route back through node2 from babeld:
		// only its own route to br-client must be gone.
		return strings.Contains(now, "dev br-client") && !strings.Contains(old, "dev br-client")
	}) {
		t.Fatalf("the host route did not move: node1 %q %v node2 %q %v", old, l.roamClients(t, l.node1), now, l.roamClients(t, l.node2))
	}
	if !finished(fetch, 6000000, 30*time.Second) {
		t.Fatalf("IPv6 download across the roam: %s", fetch.Log())
	}
}

// The seed: on set_platprefix "existing clients stay on their old PLAT as
// if they had roamed, new ones use the new PLAT"; del_platprefix drops
// what pointed at a dead PLAT.
func TestPLATSwitchKeepsOldSessionsOnTheOldPLAT(t *testing.T) {
	platSwitchKeepsOldSessions(t, roamOpts{})
}

func TestPLATSwitchKeepsOldSessionsOnTheOldPLATLegacy(t *testing.T) {
	platSwitchKeepsOldSessions(t, roamOpts{legacy: true})
}

func platSwitchKeepsOldSessions(t *testing.T, o roamOpts) {
	l := newRoamLabAtNode1(t, o)
	fetch, progress := startDownload(t, l.Lab, l.inet, l.client, "switch", "198.51.100.1:5001", 6000000, 1000000)
	receivedMore(t, fetch, progress, 1500000)
	// What prefixd does on a switch: tell clatd and l3roamd.
	for _, d := range []string{"clatd", "l3roamd"} {
		if out, err := ctlsock.Query(l.sock[d+"@"+l.node1], "set_platprefix "+meshP2); err != nil || out != "ok" {
			t.Fatalf("%s: %v %s", d, err, out)
		}
	}
	if got := l.exitCarries(t); got != "exit1" {
		t.Errorf("the client that was there before the switch now leaves through %s", got)
	}
	// A client new to node1 uses the new PLAT.
	c2 := l.NS("c2")
	l.Link(c2, "c0", l.node1, "cl-port2")
	l.Must(l.node1, "ip", "link", "set", "cl-port2", "master", "br-client")
	l.Must(c2, "ip", "link", "set", "c0", "address", "02:c1:1e:00:00:0b")
	l.Must(c2, "ip", "addr", "add", "10.130.0.11/16", "dev", "c0")
	l.Must(c2, "ip", "route", "add", "default", "via", "10.130.0.1")
	if got := l.sessionsAt(t, c2, "fddd:1337:1337::1:a82:b"); got != "exit2" {
		t.Errorf("a new client after the switch has its sessions at %s", got)
	}
	if !finished(fetch, 6000000, 30*time.Second) {
		t.Fatalf("download across the PLAT switch: %s", fetch.Log())
	}
	// P1 declared dead: the old client starts over on P2.
	if out, err := ctlsock.Query(l.sock["l3roamd@"+l.node1], "del_platprefix "+meshP1); err != nil || out != "ok" {
		t.Fatalf("del_platprefix: %v %s", err, out)
	}
	if got := l.exitCarries(t); got != "exit2" {
		t.Errorf("after del_platprefix the old client leaves through %s", got)
	}
}

// A roamed client renews its DHCP lease at the new node and keeps its
// address (dnsmasq authoritative on every node); l3roamd takes the
// remaining lease from dnsmasq's lease file.
func TestRoamedClientRenewsItsDHCPLeaseAtTheNewNode(t *testing.T) {
	l := newMeshLabWith(t, true)
	l.startRoam(t, roamOpts{dhcp: true})
	dhcp := l.Start(l.client, "dhcp-client", netlab.Helper("dhcp-client", "c0")...)
	var ip string
	if !netlab.WaitFor(20*time.Second, func() bool {
		_, err := fmt.Sscanf(dhcp.Log(), "lease %s", &ip)
		return err == nil
	}) {
		t.Fatalf("no lease: %s", dhcp.Log())
	}
	l.reach(t, l.client, "198.51.100.1")
	var lease int
	if !netlab.WaitFor(10*time.Second, func() bool {
		for _, c := range l.roamClients(t, l.node1) {
			if c.MAC == clientMAC && c.IPv4 == ip {
				lease = c.LeaseS
				return lease <= 120 // read from dnsmasq's lease file (every 5 s)
			}
		}
		return false
	}) || lease > 120 || lease < 60 {
		t.Fatalf("node1's l3roamd: lease %d s of %s (dnsmasq gave 120 s): %v", lease, ip, l.roamClients(t, l.node1))
	}
	fetch, progress := startDownload(t, l.Lab, l.inet, l.client, "dhcp", "198.51.100.1:5001", 5000000, 1000000)
	receivedMore(t, fetch, progress, 1500000)
	l.moveClient(t, l.node1, l.node2)
	if !netlab.WaitFor(10*time.Second, func() bool { return l.servesClient(t, l.node2) }) {
		t.Fatal("node2 did not take the client over")
	}
	dhcp.Signal(syscall.SIGUSR1)
	if !netlab.WaitFor(15*time.Second, func() bool {
		return strings.Contains(dhcp.Log(), "renewed ") || strings.Contains(dhcp.Log(), "renew failed")
	}) ||
		!strings.Contains(dhcp.Log(), "renewed "+ip+" ") {
		t.Fatalf("renewal at node2: %s", dhcp.Log())
	}
	if b, _ := os.ReadFile(filepath.Join(l.Dir, "leases-"+l.node2)); !strings.Contains(string(b), clientMAC+" "+ip) {
		t.Errorf("node2's dnsmasq has no lease for the client: %q", b)
	}
	if !finished(fetch, 5000000, 30*time.Second) {
		t.Fatalf("download across roam and renewal: %s", fetch.Log())
	}
}

// sessionsAt pings from the client in ns and reports which exit holds
// sessions of its CLAT address (a per-client view, while other clients'
// traffic runs).
func (l *meshLab) sessionsAt(t *testing.T, ns, clatAddr string) string {
	t.Helper()
	if out, _ := l.Run(ns, "ping", "-c", "2", "-W", "2", "198.51.100.1"); !strings.Contains(out, " 0% packet loss") {
		t.Fatalf("ping from %s:\n%s", ns, out)
	}
	var at []string
	for name, x := range map[string]string{"exit1": l.exit1, "exit2": l.exit2} {
		out, err := ctlsock.Query(l.sock["platd@"+x], "sessions "+clatAddr)
		var list []any
		if err == nil && json.Unmarshal([]byte(out), &list) == nil && len(list) > 0 {
			at = append(at, name)
		}
	}
	return strings.Join(at, "+")
}

func n(m map[string]any, k string) float64 { v, _ := m[k].(float64); return v }

// clientPortDrops sums the packets l3roamd's client-port rules dropped.
func (l *meshLab) clientPortDrops(t *testing.T, ns string) float64 {
	out := l.T(t).Must(ns, "nft", "list", "chain", "inet", "l3roamd", "raw")
	var sum float64
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "drop") {
			var p, b float64
			if i := strings.Index(line, "counter packets "); i >= 0 {
				fmt.Sscanf(line[i:], "counter packets %g bytes %g", &p, &b)
				sum += p
			}
		}
	}
	return sum
}

// roamTable is l3roamd's nftables table without what changes by itself
// (timeouts, counters): what a restart must leave as it was.
func (l *meshLab) roamTable(t *testing.T, ns string) string {
	out := l.T(t).Must(ns, "nft", "list", "table", "inet", "l3roamd")
	out = regexp.MustCompile(` (timeout|expires) [0-9hms]+`).ReplaceAllString(out, "")
	return regexp.MustCompile(`counter packets \d+ bytes \d+`).ReplaceAllString(out, "counter")
}

func lastLine(s, with string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, with) {
			return l
		}
	}
	return ""
}

// The legacy backend (ipsets and ip6tables NETMAP at the node; platd on
// iptables too), for firmware without nftables: the IPv4 client roams
// node1 -> node2 with a download running, l3roamd is killed and restarted
// on the new node and the PLAT, and the client roams back home with another
// download running.
func TestRoamLegacyBackend(t *testing.T) {
	l := newRoamLabAtNode1(t, roamOpts{legacy: true})
	state := func(ns string) string {
		out, _ := l.Run(ns, "sh", "-c", "ipset save | grep '^add l3r_' | sed 's/ timeout [0-9]*//' | sort; ip6tables-legacy-save | grep -e L3ROAMD -e l3r_; ip -6 route show proto 158")
		return out
	}
	explain := func() string {
		var b strings.Builder
		for _, ns := range []string{l.node1, l.node2, l.exit1} {
			ct, _ := l.Run(ns, "sh", "-c", "conntrack -L -f ipv6 -p tcp; ip -6 route show table all | grep -i a82")
			fmt.Fprintf(&b, "%s:\n%s%s\n", ns, state(ns), ct)
		}
		return b.String()
	}
	fetch, progress := startDownload(t, l.Lab, l.inet, l.client, "legacy", "198.51.100.1:5001", 8000000, 1000000)
	ping := l.Start(l.client, "ping-legacy", "ping", "-i", "0.2", "-c", "40", "198.51.100.1")
	udpSession := l.startUDPSession(t, 20)
	receivedMore(t, fetch, progress, 1500000)
	moved := time.Now()
	l.moveClient(t, l.node1, l.node2)
	if !netlab.WaitFor(10*time.Second, func() bool { return l.servesClient(t, l.node2) && !l.servesClient(t, l.node1) }) {
		t.Fatalf("node2 did not take the client over: %v", l.roamClients(t, l.node2))
	}
	if !finished(fetch, 8000000, 30*time.Second) {
		t.Fatalf("the running download across the roam: %s\n%s", fetch.Log(), explain())
	}
	netlab.WaitFor(15*time.Second, ping.Exited)
	t.Logf("ping across the roam: %s", lastLine(ping.Log(), "packet loss"))
	udpSession(t, moved)
	// node2 sends the client's packets as node1 did, and the home address's
	// route brings the replies; the PLAT keeps the ROAM as state only.
	n2 := state(l.node2)
	for _, want := range []string{
		"add l3r_c" + hex.EncodeToString(netip.MustParsePrefix(meshCLAT1).Addr().AsSlice()[:12]) + " fddd:1337:1337::2:a82:a",
		"add l3r_home fddd:1337:1337::1:a82:a",
		"-j NETMAP --to " + meshP1, "-j NETMAP --to " + meshCLAT1,
		"fddd:1337:1337::1:a82:a dev clat", // its route (proto 158)
	} {
		if !strings.Contains(n2, want) {
			t.Errorf("node2 lacks %q:\n%s", want, n2)
		}
	}
	if !strings.Contains(state(l.exit1), "add l3r_roams fddd:1337:1337::2:a82:a ") {
		t.Errorf("exit1's ipset of roamed clients:\n%s", state(l.exit1))
	}

	// Killed and restarted: the state is read back from the sets, not lost or doubled.
	before := map[string]string{}
	for _, ns := range []string{l.node2, l.exit1} {
		before[ns] = state(ns)
		l.procs["l3roamd@"+ns].Signal(syscall.SIGKILL)
		netlab.WaitFor(5*time.Second, l.procs["l3roamd@"+ns].Exited)
	}
	for _, ns := range []string{l.node2, l.exit1} {
		l.daemon(t, ns, "l3roamd", l.args["l3roamd@"+ns]...)
		if got := state(ns); got != before[ns] {
			t.Errorf("%s after the restart:\n%s\nbefore:\n%s", ns, got, before[ns])
		}
	}
	if st := statusOf(t, l.sock["l3roamd@"+l.node2]); st["clients_464xlat"] != float64(1) {
		t.Errorf("node2 after the restart: %v", st)
	}

	fetch, progress = startDownload(t, l.Lab, l.inet, l.client, "legacy-back", "198.51.100.1:5002", 5000000, 1000000)
	receivedMore(t, fetch, progress, 1500000)
	l.moveClient(t, l.node2, l.node1)
	if !netlab.WaitFor(10*time.Second, func() bool { return l.servesClient(t, l.node1) && !l.servesClient(t, l.node2) }) {
		t.Fatal("node1 did not take the client back")
	}
	if !finished(fetch, 5000000, 30*time.Second) {
		t.Fatalf("download across the roam back: %s\n%s", fetch.Log(), explain())
	}
	if n2 := state(l.node2); strings.Contains(n2, "a82:a") {
		t.Errorf("node2 still holds the client that left:\n%s", n2)
	}
	l.reach(t, l.client, "198.51.100.1")
}

// A burst of neighbour events overflows l3roamd's netlink socket (ENOBUFS),
// which ends its subscription; l3roamd must subscribe again and still
// learn clients (issue 15): node1's l3roamd is stopped while 40000
// neighbour entries come and go on a bridge of its node, then a client
// shows up.
func TestRoamStillLearnsClientsAfterANeighbourEventFlood(t *testing.T) {
	l := newMeshLabWith(t, true)
	l.startRoam(t, roamOpts{})
	l.Must(l.node1, "ip", "link", "add", "flood0", "type", "bridge")
	l.Must(l.node1, "ip", "link", "set", "flood0", "up")
	var add, del strings.Builder
	for i := 0; i < 20000; i++ {
		fmt.Fprintf(&add, "neigh add 10.%d.%d.1 lladdr 02:00:00:%02x:%02x:%02x dev flood0\n", i/200, i%200, i>>16, i>>8&255, i&255)
		fmt.Fprintf(&del, "neigh del 10.%d.%d.1 dev flood0\n", i/200, i%200)
	}
	l.Must(l.node1, "ip", "addr", "add", "10.0.0.1/8", "dev", "flood0")
	floodWhileStopped(l.Lab, l.node1, l.procs["l3roamd@"+l.node1], add.String(), del.String())
	st := func() map[string]any { return statusOf(t, l.sock["l3roamd@"+l.node1]) }
	if !netlab.WaitFor(10*time.Second, func() bool { c, _ := st()["counters"].(map[string]any); return n(c, "neighbour_watch_restarts") >= 1 }) {
		t.Fatalf("the flood did not end the subscription, or it was not made again (counters %v)", st()["counters"])
	}
	// A client node1 has never seen (the lab's client with a new MAC)
	// comes: only a working subscription learns it.
	const newMAC = "02:c1:1e:00:00:bb"
	l.Must(l.client, "ip", "link", "set", "c0", "address", newMAC)
	l.reach(t, l.client, "198.51.100.1")
	if !netlab.WaitFor(10*time.Second, func() bool {
		for _, c := range l.roamClients(t, l.node1) {
			if c.MAC == newMAC {
				return true
			}
		}
		return false
	}) {
		t.Fatalf("node1's l3roamd did not learn a new client after the flood: %v", l.roamClients(t, l.node1))
	}
}

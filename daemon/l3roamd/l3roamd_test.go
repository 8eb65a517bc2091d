package l3roamd

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gluon-464xlat/gluon-464xlat/intercom"
	"github.com/gluon-464xlat/gluon-464xlat/internal/ctlsock"
)

// RFC 4291 appendix A: the modified EUI-64 flips the universal/local bit
// and puts ff:fe in the middle; the C l3roamd derives node-client IPs so.
func TestNodeClientIPIsModifiedEUI64OfTheMAC(t *testing.T) {
	p := netip.MustParsePrefix("fddd:1337:2::/64")
	mac := net.HardwareAddr{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc}
	got := nodeClientIP(p, mac)
	if want := netip.MustParseAddr("fddd:1337:2::1034:56ff:fe78:9abc"); got != want {
		t.Fatalf("%s, want %s", got, want)
	}
	back, ok := macOfNodeClientIP(p, got)
	if !ok || back.String() != mac.String() {
		t.Fatalf("inverse: %v %v", back, ok)
	}
	for _, a := range []string{"fddd:1337:2::1", "fddd:1337:3::1034:56ff:fe78:9abc", "10.0.0.1"} {
		if _, ok := macOfNodeClientIP(p, netip.MustParseAddr(a)); ok {
			t.Errorf("%s taken for a node-client IP", a)
		}
	}
}

func TestProamSetNameCarriesThePLATPrefix(t *testing.T) {
	p := netip.MustParsePrefix("fddd:1337:1338:1234:5678:9abc::/96")
	if n := setName(p); n != "proam_fddd13371338123456789abc" {
		t.Fatalf("name %s", n)
	}
	if got, ok := platcOfSet(setName(p)); !ok || got != p {
		t.Fatalf("%v %v", got, ok)
	}
	if _, ok := platcOfSet("proam_zz"); ok {
		t.Error("bad name accepted")
	}
}

// testDaemon has no kernel behind it (nft nil): the validation logic is
// tested here, the kernel side in e2e/roam_test.go.
func testDaemon() *daemon {
	c := &config{
		nodeIP: netip.MustParseAddr("fddd:1337:1::3"), nodeClient: netip.MustParsePrefix("fddd:1337:2::/64"),
		ownPLAT: netip.MustParsePrefix("fddd:1337:1338::1:0:0/96"), clatRange: netip.MustParsePrefix("fddd:1337:1337::/48"),
		platRange: netip.MustParsePrefix("fddd:1337:1338::/48"), key: []byte("0123456789abcdef"),
		maxLease: 7 * 24 * time.Hour, window: 30 * time.Second,
		maxClients: 1024, maxAddrs: 16, goneGrace: time.Minute, defaultLease: time.Hour,
	}
	d := newDaemon(c)
	d.out = func([]byte, netip.Addr, netip.Addr) error { return errors.New("no network in unit tests") }
	d.k = &fakeKernel{served: map[string]servedClient{}}
	return d
}

var (
	clatB   = netip.MustParsePrefix("fddd:1337:1337::2:0:0/96")
	clatD   = netip.MustParsePrefix("fddd:1337:1337::1:0:0/96")
	platMgt = netip.MustParseAddr("fddd:1337:1338::1:c000:1")
	fromB   = netip.MustParseAddr("fddd:1337:1337::2:c000:2")
)

func roamPacket(key []byte, nonce uint32, at time.Time, mod func(*intercom.XLAT)) []byte {
	x := &intercom.XLAT{ClientIP: netip.MustParseAddr("10.130.0.10"), Lease: 3600, CLATD: clatD, CLATB: clatB}
	if mod != nil {
		mod(x)
	}
	h := intercom.Header{TTL: 1, Nonce: nonce, Sender: netip.MustParseAddr("fddd:1337:1::2")}
	return intercom.Roam(h, x, key, uint32(at.Unix()))
}

// The seed's security consideration: anyone who learns a client's IPv4,
// CLAT and PLAT could forge ROAM (a lease of 0 cuts the client off, a
// CLATB of theirs steals its traffic). Each forgery is refused and counted.
func TestForgedRoamIsRefusedAndCounted(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		name, reason string
		b            []byte
		from, to     netip.Addr
	}{
		{"no key", "bad_auth", roamPacket([]byte("attacker's guess!"), 1, now, nil), fromB, platMgt},
		{"unsigned", "unauthenticated", roamPacket([]byte("0123456789abcdef"), 2, now, nil)[:24+34], fromB, platMgt},
		{"old", "stale", roamPacket([]byte("0123456789abcdef"), 3, now.Add(-time.Minute), nil), fromB, platMgt},
		{"zero lease", "roam_invalid", roamPacket([]byte("0123456789abcdef"), 4, now, func(x *intercom.XLAT) { x.Lease = 0 }), fromB, platMgt},
		{"absurd lease", "roam_invalid", roamPacket([]byte("0123456789abcdef"), 5, now, func(x *intercom.XLAT) { x.Lease = 1 << 30 }), fromB, platMgt},
		{"prefix outside the mesh", "roam_invalid", roamPacket([]byte("0123456789abcdef"), 6, now, func(x *intercom.XLAT) {
			x.CLATB = netip.MustParsePrefix("2001:db8::/96")
		}), netip.MustParseAddr("2001:db8::c000:2"), platMgt},
		{"not from the new node", "roam_wrong_source", roamPacket([]byte("0123456789abcdef"), 7, now, nil), netip.MustParseAddr("fddd:1337:1337::3:c000:2"), platMgt},
		{"not to this PLAT", "roam_not_for_this_plat", roamPacket([]byte("0123456789abcdef"), 8, now, nil), fromB, netip.MustParseAddr("fddd:1337:1338::2:c000:1")},
		{"broadcast client", "roam_invalid", roamPacket([]byte("0123456789abcdef"), 9, now, func(x *intercom.XLAT) {
			x.ClientIP = netip.MustParseAddr("255.255.255.255")
		}), fromB, platMgt},
	} {
		d := testDaemon()
		d.handle(c.b, c.from, c.to)
		if d.count["dropped_"+c.reason] != 1 || len(d.roams) != 0 {
			t.Errorf("%s: counters %v, roams %v", c.name, d.count, d.roams)
		}
	}
}

func TestMalformedIntercomPacketsAreCounted(t *testing.T) {
	d := testDaemon()
	for _, b := range [][]byte{nil, {0}, make([]byte, 23), append(make([]byte, 24), 0, 0)} {
		d.handle(b, fromB, platMgt)
	}
	if d.count["dropped_malformed"] != 4 {
		t.Fatalf("%v", d.count)
	}
}

func TestFlagsAreCheckedWithOneClearError(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{}, "-node-ip"},
		{[]string{"-node-ip", "10.0.0.1", "-node-client-prefix", "fddd::/64"}, "-node-ip"},
		{[]string{"-node-ip", "fddd::1", "-node-client-prefix", "fddd::/48"}, "/64"},
		{[]string{"-node-ip", "fddd::1", "-node-client-prefix", "fddd::/64", "-clat-prefix", "fddd::/64"}, "-clat-prefix"},
		{[]string{"-node-ip", "fddd::1", "-node-client-prefix", "fddd::/64", "-clat-prefix", "fddd:1337:1337::1:0:0/96",
			"-clat-range", "fddd:1337:1337::/48", "-plat-range", "fddd:1337:1338::/48"}, "-roam-key-file"},
		{[]string{"-node-ip", "fddd::1", "-node-client-prefix", "fddd::/64", "-clat-prefix", "fddd:1:1::1:0:0/96",
			"-clat-range", "fddd:1337:1337::/48", "-plat-range", "fddd:1337:1338::/48"}, "not inside"},
		{[]string{"-node-ip", "fddd::1", "-node-client-prefix", "fddd::/64", "-backend", "pf"}, "-backend"},
	} {
		_, err := parseFlags(c.args)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.args, err, c.want)
		}
	}
}

// prefixd tells l3roamd del_platprefix DEAD before set_platprefix NEW: the
// clients on the dead PLAT end up on the new one, not on none (their
// INFO_XLAT would be refused at the next node).
func TestClientsOfADeadPLATTakeTheNextOne(t *testing.T) {
	d := testDaemon()
	p1, p2 := netip.MustParsePrefix("fddd:1337:1338::1:0:0/96"), netip.MustParsePrefix("fddd:1337:1338::2:0:0/96")
	d.plat = p1
	ip := netip.MustParseAddr("10.130.0.10")
	d.xlat[ip] = xlatState{clatd: clatD, platc: p1, expires: time.Now().Add(time.Hour)}
	cmds := d.commands()
	if out, err := cmds["del_platprefix"]([]string{p1.String()}); err != nil || out != "ok" {
		t.Fatal(out, err)
	}
	if out, err := cmds["set_platprefix"]([]string{p2.String()}); err != nil || out != "ok" {
		t.Fatal(out, err)
	}
	if got := d.xlat[ip].platc; got != p2 {
		t.Fatalf("client's PLAT %v, want %v", got, p2)
	}
	if out, _ := cmds["get_platprefix"](nil); out != p2.String() {
		t.Fatalf("get_platprefix %v", out)
	}
}

// dnsmasq's lease file: "expiry MAC IP hostname client-id"; 0 is an
// infinite lease, an expired line does not count, a later one for the
// same client does.
func TestLeasesFromDnsmasqsFile(t *testing.T) {
	d := testDaemon()
	d.c.leases = filepath.Join(t.TempDir(), "dhcp.leases")
	d.c.defaultLease = time.Hour
	now := time.Now().Unix()
	os.WriteFile(d.c.leases, []byte(fmt.Sprintf("%d 02:c1:1e:00:00:0a 10.130.0.10 a *\n%d 02:C1:1E:00:00:0A 10.130.0.10 a *\n0 02:c1:1e:00:00:0b 10.130.0.11 b *\n",
		now-10, now+120)), 0o644)
	ls := d.readLeases()
	mac := func(s string) net.HardwareAddr { m, _ := net.ParseMAC(s); return m }
	if left, ok := d.leaseLeft(ls, mac("02:c1:1e:00:00:0a"), netip.MustParseAddr("10.130.0.10")); !ok || left < 110*time.Second || left > 120*time.Second {
		t.Errorf("renewed lease: %v %v", left, ok)
	}
	if left, ok := d.leaseLeft(ls, mac("02:c1:1e:00:00:0b"), netip.MustParseAddr("10.130.0.11")); !ok || left != d.c.maxLease {
		t.Errorf("infinite lease: %v %v", left, ok)
	}
	if left, ok := d.leaseLeft(ls, mac("02:c1:1e:00:00:0c"), netip.MustParseAddr("10.130.0.12")); ok || left != time.Hour {
		t.Errorf("unknown client: %v %v", left, ok)
	}
}

// The C daemon's socket commands for prefixes and addresses: repeated adds
// are no-ops, deletes of what is not there and malformed arguments get an
// error reply (where the C daemon answers nothing).
func TestSocketCommandsForPrefixesAndAddresses(t *testing.T) {
	d := testDaemon()
	cmds := d.commands()
	run := func(cmd string, args ...string) (any, error) { return cmds[cmd](args) }
	for _, p := range []string{"2001:db8:1::/64", "2001:db8:1::/64", "2001:db8:2::1/64"} {
		if _, err := run("add_prefix", p); err != nil {
			t.Fatalf("add_prefix %s: %v", p, err)
		}
	}
	if out, _ := run("get_prefixes"); fmt.Sprint(out) != "map[cidr:[2001:db8:1::/64 2001:db8:2::/64] prefixes:[2001:db8:1:: 2001:db8:2::]]" {
		t.Errorf("after adds: %v", out)
	}
	if _, err := run("del_prefix", "2001:db8:1::/64"); err != nil {
		t.Fatal(err)
	}
	if out, _ := run("get_prefixes"); fmt.Sprint(out) != "map[cidr:[2001:db8:2::/64] prefixes:[2001:db8:2::]]" {
		t.Errorf("after del: %v", out)
	}
	for _, bad := range [][]string{{"del_prefix", "2001:db8:1::/64"}, {"del_prefix", "nonsense"}, {"add_prefix", "10.0.0.0/8"},
		{"add_prefix"}, {"del_address", "nonsense", "02:00:00:00:00:01"}, {"del_address", "2001:db8:2::5", "02:00:00:00:00:09"},
		{"probe", "nonsense"}, {"add_address", "nonsense", "02:00:00:00:00:01"}} {
		if _, err := run(bad[0], bad[1:]...); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}

	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	a, b := netip.MustParseAddr("2001:db8:2::5"), netip.MustParseAddr("2001:db8:2::6")
	d.clients[mac.String()] = &client{mac: mac, ip4: netip.MustParseAddr("10.130.0.5"), ip6: []netip.Addr{a, b}}
	if _, err := run("del_address", "2001:db8:2::5", mac.String()); err != nil {
		t.Fatal(err)
	}
	if _, err := run("del_address", "10.130.0.5", mac.String()); err != nil {
		t.Fatal(err)
	}
	if cl := d.clients[mac.String()]; fmt.Sprint(cl.ip6) != "["+b.String()+"]" || cl.ip4.IsValid() {
		t.Errorf("after del_address: ip6 %v ip4 %v", cl.ip6, cl.ip4)
	}
}

// Issue 13: the C l3roamd sends all its messages with one nonce. Two CLAIMs
// of one C node for two clients are both acted on; a flooded copy of one
// (lower TTL) is a duplicate, counted; the same CLAIM after the duplicate
// window (the client came back) counts again.
func TestMessagesOfOneNonceAreNotDuplicates(t *testing.T) {
	d := testDaemon()
	cNode := intercom.Header{TTL: 3, Nonce: 0xdeadbeef, Sender: netip.MustParseAddr("fddd:1337:1::9")}
	macs := []net.HardwareAddr{{2, 0, 0, 0, 0, 1}, {2, 0, 0, 0, 0, 2}}
	for _, mac := range macs {
		d.handle(intercom.Claim(cNode, mac), cNode.Sender, netip.Addr{})
	}
	if d.count["claims_for_unknown_clients"] != 2 || d.count["duplicates"] != 0 {
		t.Fatalf("two CLAIMs of one nonce: counters %v", d.count)
	}
	flooded := cNode
	flooded.TTL = 2
	d.handle(intercom.Claim(flooded, macs[0]), cNode.Sender, netip.Addr{})
	if d.count["duplicates"] != 1 || d.count["claims_for_unknown_clients"] != 2 {
		t.Fatalf("flooded copy: counters %v", d.count)
	}
	for k := range d.seen {
		d.seen[k] = time.Now().Add(-time.Second) // the window passed
	}
	d.handle(intercom.Claim(cNode, macs[0]), cNode.Sender, netip.Addr{})
	if d.count["claims_for_unknown_clients"] != 3 {
		t.Fatalf("the same CLAIM after the window: counters %v", d.count)
	}
}

// Issue 13: the C l3roamd repeats a CLAIM with the same bytes every 300 ms
// until it is answered, and claims a client that comes back within seconds
// with the same bytes again. Sent to this node alone, each is acted on;
// the same bytes to the group (a flooded copy) are a duplicate.
func TestRepeatedUnicastClaimsOfTheCDaemonAreActedOn(t *testing.T) {
	d := testDaemon()
	cNode := intercom.Header{TTL: 1, Nonce: 0xdeadbeef, Sender: netip.MustParseAddr("fddd:1337:1::9")}
	claim := intercom.Claim(cNode, net.HardwareAddr{2, 0, 0, 0, 0, 1})
	for i := 0; i < 3; i++ {
		d.handle(claim, cNode.Sender, d.c.nodeIP)
	}
	if d.count["claims_for_unknown_clients"] != 3 || d.count["duplicates"] != 0 {
		t.Fatalf("three unicast CLAIMs: counters %v", d.count)
	}
	for i := 0; i < 2; i++ {
		d.handle(claim, cNode.Sender, intercom.Group)
	}
	if d.count["claims_for_unknown_clients"] != 4 || d.count["duplicates"] != 1 {
		t.Fatalf("the same CLAIM twice to the group: counters %v", d.count)
	}
}

// Unsigned messages cannot grow the duplicate table without bound.
func TestDuplicateTableIsBounded(t *testing.T) {
	d := testDaemon()
	h := intercom.Header{TTL: 1, Sender: netip.MustParseAddr("fddd:1337:1::9")}
	for i := 0; i < maxSeen+100; i++ {
		h.Nonce = uint32(i)
		d.handle(intercom.Seek(h, netip.MustParseAddr("fddd:1337:2::1")), h.Sender, netip.Addr{})
	}
	if len(d.seen) > maxSeen || d.count["duplicate_table_full"] != 100 {
		t.Fatalf("%d remembered, counters %v", len(d.seen), d.count)
	}
}

// Issue 13: the C daemon's socket commands answer in its shapes, through
// the socket: get_clients an object whose "clients" is the count (Gluon's
// respondd reads it so, with json-c) and whose "clientlist" has per MAC an
// "interface" and "addresses" with a "state"; get_prefixes and get_meshifs
// objects of string arrays; the text replies the C daemon prints.
func TestSocketRepliesInTheCDaemonsShapes(t *testing.T) {
	d := testDaemon()
	d.c.clientDev = "local-node"
	d.meshIfs = map[string]int{"mesh-vpn": 1}
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	sock := filepath.Join(t.TempDir(), "l3roamd.sock")
	srv, err := ctlsock.Listen(sock, d.commands())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	q := func(line string) string {
		out, err := ctlsock.Query(sock, line)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		return out
	}
	var empty map[string]any
	if err := json.Unmarshal([]byte(q("get_clients")), &empty); err != nil || empty["clients"] != float64(0) || empty["clientlist"] != nil {
		t.Errorf("get_clients without clients: %v %v", empty, err)
	}
	d.clients[mac.String()] = &client{mac: mac, ip4: netip.MustParseAddr("10.130.0.5"), ip6: []netip.Addr{netip.MustParseAddr("2001:db8:2::5")}}
	var got struct {
		Clients    *int `json:"clients"`
		Clientlist map[string]struct {
			Interface *string                         `json:"interface"`
			Addresses map[string]struct{ State *int } `json:"addresses"`
		} `json:"clientlist"`
	}
	out := q("get_clients")
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.Clients == nil || *got.Clients != 1 {
		t.Fatalf("get_clients: %v %s", err, out)
	}
	c, ok := got.Clientlist[mac.String()]
	if !ok || c.Interface == nil || *c.Interface != "local-node" || len(c.Addresses) != 2 {
		t.Fatalf("get_clients clientlist: %s", out)
	}
	for a, st := range c.Addresses {
		if _, err := netip.ParseAddr(a); err != nil || st.State == nil || *st.State != 1 {
			t.Errorf("address %q state %v: %s", a, st.State, out)
		}
	}
	if _, ok := c.Addresses["::ffff:10.130.0.5"]; !ok {
		t.Errorf("the IPv4 address is not there IPv4-mapped, as the C daemon keeps it: %s", out)
	}
	var meshifs struct{ Mesh_interfaces []string }
	if json.Unmarshal([]byte(q("get_meshifs")), &meshifs); fmt.Sprint(meshifs.Mesh_interfaces) != "[mesh-vpn]" {
		t.Errorf("get_meshifs: %s", q("get_meshifs"))
	}
	for _, c := range [][2]string{ // in order: a delete after its add
		{"add_prefix 2001:db8:9::/64", "Added prefix: 2001:db8:9::/64"},
		{"del_prefix 2001:db8:9::/64", "Deleted prefix: 2001:db8:9::/64"},
		{"add_address 2001:db8:2::7 " + mac.String(), "OK"},
		{"del_address 2001:db8:2::7 " + mac.String(), "OK"},
		{"verbosity verbose", ""},
		{"verbosity none", ""},
	} {
		if got := q(c[0]); got != c[1] {
			t.Errorf("%s: %q, want %q", c[0], got, c[1])
		}
	}
	var prefixes map[string][]string
	if err := json.Unmarshal([]byte(q("get_prefixes")), &prefixes); err != nil {
		t.Fatalf("get_prefixes: %v", err)
	}
	for _, p := range prefixes["prefixes"] {
		if _, err := netip.ParseAddr(p); err != nil {
			t.Errorf("get_prefixes: %q is not an address, as the C daemon prints them", p)
		}
	}
}

// Issue 13 item 5: intercom is between nodes. A CLAIM sent from (or in the
// name of) a client address does not release the client; packets that come
// in on an interface other than a mesh interface are refused (by name: a
// mesh interface made anew keeps counting); refusals are counted always,
// logged at most once a second.
func TestIntercomOnlyFromNodesOnTheMesh(t *testing.T) {
	d := testDaemon()
	d.prefix6 = []netip.Prefix{netip.MustParsePrefix("2001:db8:2::/64")}
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	d.clients[mac.String()] = &client{mac: mac}
	client := netip.MustParseAddr("2001:db8:2::5")
	d.handle(intercom.Claim(intercom.Header{TTL: 1, Nonce: 1, Sender: client}, mac), client, netip.Addr{})
	d.handle(intercom.Claim(intercom.Header{TTL: 1, Nonce: 2, Sender: client}, mac), netip.MustParseAddr("fe80::1"), netip.Addr{})
	if _, ok := d.clients[mac.String()]; !ok || d.count["dropped_from_client_address"] != 2 {
		t.Fatalf("a client's CLAIM released the client: clients %v counters %v", d.clients, d.count)
	}
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skip("no lo")
	}
	d.meshIfs = map[string]int{"lo": 12345} // a stale index: the name counts
	if !d.fromMesh(lo.Index) {
		t.Error("a mesh interface by name not recognised")
	}
	d.meshIfs = map[string]int{"mesh0": lo.Index}
	if d.fromMesh(lo.Index) {
		t.Error("an interface that is not a mesh interface accepted")
	}
	for i := 0; i < 1000; i++ {
		d.drop("test", client, nil)
	}
	if d.count["dropped_test"] != 1000 {
		t.Errorf("refusals not all counted: %v", d.count)
	}
}

// Issue 13 item 4: state learned from the network is bounded. A client
// whose MAC the client bridge forgot is forgotten after the grace (unless
// seen again); clients and addresses per client are capped, and counted
// when the cap is hit.
func TestClientsExpireAndAreCapped(t *testing.T) {
	d := testDaemon()
	d.c.maxClients, d.c.maxAddrs = 2, 2
	d.prefix6 = []netip.Prefix{netip.MustParsePrefix("2001:db8:2::/64")}
	a, b, c := net.HardwareAddr{2, 0, 0, 0, 0, 1}, net.HardwareAddr{2, 0, 0, 0, 0, 2}, net.HardwareAddr{2, 0, 0, 0, 0, 3}
	d.clients[a.String()] = &client{mac: a}
	d.clients[b.String()] = &client{mac: b}
	d.learn(c, netip.Addr{})
	if _, ok := d.clients[c.String()]; ok || d.count["clients_cap_hit"] != 1 {
		t.Fatalf("a third client with a cap of 2: clients %d, counters %v", len(d.clients), d.count)
	}
	for i := 1; i <= 3; i++ {
		d.learn(a, netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 2, 15: byte(i)}))
	}
	if n := len(d.clients[a.String()].ip6); n != 2 || d.count["addresses_cap_hit"] != 1 {
		t.Fatalf("three addresses with a cap of 2: %d kept, counters %v", n, d.count)
	}
	d.markGone(a)
	d.markGone(b)
	d.learn(b, netip.Addr{}) // b shows up again
	d.forgetGone(time.Now().Add(30 * time.Second))
	if len(d.clients) != 2 {
		t.Fatalf("forgotten within the grace: %d clients", len(d.clients))
	}
	d.forgetGone(time.Now().Add(2 * time.Minute))
	if _, ok := d.clients[a.String()]; ok || d.clients[b.String()] == nil || d.count["clients_expired"] != 1 {
		t.Fatalf("after the grace: clients %v, counters %v", d.clients, d.count)
	}
}

// A mesh interface is followed by name: one named before it existed, or
// made anew by netifd (a new index, and the group membership gone with the
// old device), is taken again on the next tick; one that went is not up.
func TestMeshInterfacesAreFollowedByName(t *testing.T) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skip("no lo")
	}
	d := testDaemon()
	d.meshIfs = map[string]int{"lo": lo.Index + 1000, "gone0": 7, "later0": 0}
	d.rejoinMeshIfs()
	if d.meshIfs["lo"] != lo.Index || d.meshIfs["gone0"] != 0 || d.meshIfs["later0"] != 0 {
		t.Errorf("mesh interfaces after a tick: %v, want lo at %d, gone0 and later0 not up", d.meshIfs, lo.Index)
	}
	if d.count["mesh_ifs_rejoined"] != 1 {
		t.Errorf("counters %v, want mesh_ifs_rejoined 1", d.count)
	}
	if up := d.upMeshIfs(); len(up) != 1 || up[0] != "lo" {
		t.Errorf("up mesh interfaces %v", up)
	}
}

// -mesh-ifs-cmd: the names the command prints, one a line; a failing
// command gives what it printed.
func TestListMeshIfs(t *testing.T) {
	if got := listMeshIfs("printf 'mesh0\\nvx_mesh_other\\n'"); strings.Join(got, ",") != "mesh0,vx_mesh_other" {
		t.Errorf("listMeshIfs: %q", got)
	}
	if got := listMeshIfs("echo mesh0; exit 3"); strings.Join(got, ",") != "mesh0" {
		t.Errorf("listMeshIfs of a failing command: %q", got)
	}
	if got := listMeshIfs(""); got != nil {
		t.Errorf("listMeshIfs without a command: %q", got)
	}
}

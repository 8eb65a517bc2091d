package e2e

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gluon-464xlat/gluon-464xlat/internal/ctlsock"
	"github.com/gluon-464xlat/gluon-464xlat/internal/netlab"
)

// TestDemo is `make demo` (DEMO=1: narrated on stdout; KEEP=1: the lab
// stays up until Ctrl-C) and, quietly, part of make test. The daemons run
// as on a Gluon node: the Gluon upgrade scripts turn a site.conf and each
// node's MAC into UCI, the procd init scripts turn UCI into command lines
// (lab/procd-shim.sh), and only the lab's paths (sockets, key, leases, the
// babeld socket) and the WAN device are set on top.
func TestDemo(t *testing.T) {
	demo := os.Getenv("DEMO") != ""
	step := 0
	say := func(format string, a ...any) {
		if demo {
			fmt.Printf(format+"\n", a...)
		} else {
			t.Logf(format, a...)
		}
	}
	head := func(title string) {
		step++
		say("\n== %d. %s", step, title)
	}
	fail := func(format string, a ...any) {
		t.Helper()
		say("FAILED: "+format, a...)
		t.Fatalf(format, a...)
	}

	head("the lab: an IPv4 internet, two exits (platd + clatd), two nodes (clatd), one client, a Babel mesh")
	l := newMeshLabWith(t, true)
	// Ctrl-C: tear the lab down (namespaces, daemons) before leaving; with
	// KEEP=1 at the end, Ctrl-C is what ends the demo.
	sig := make(chan os.Signal, 1)
	keeping := make(chan struct{})
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	go func() {
		select {
		case <-sig:
		case <-keeping:
			return
		}
		fmt.Println("\ninterrupted: tearing the lab down")
		l.Close()
		os.Exit(130)
	}()
	l.Must(l.client, "ip", "addr", "del", "10.130.0.10/16", "dev", "c0") // it asks DHCP
	nodes := []demoNode{
		{ns: l.node1, name: "node1", mac: "02:00:00:00:00:01", ifs: []string{"m-x1", "m-x1b", "m-n2"}},
		{ns: l.node2, name: "node2", mac: "02:00:00:00:00:02", ifs: []string{"m-n1", "m-x2"}},
		{ns: l.exit1, name: "exit1", mac: "02:00:00:00:00:11", ifs: []string{"m-n1", "m-n1b"}, exit: true},
		{ns: l.exit2, name: "exit2", mac: "02:00:00:00:00:12", ifs: []string{"m-n2"}, exit: true},
	}
	site := filepath.Join(l.Dir, "site.conf")
	os.WriteFile(site, []byte(demoSite), 0o644)
	for i := range nodes {
		l.babeld(t, nodes[i].ns, nodes[i].ifs...)
	}
	l.active = "m-n1"
	for i := range nodes {
		nodes[i].uci = l.gluonUCI(t, &nodes[i], site, i+1)
	}
	plat1, plat2 := nodes[2].get("platd.plat.plat_prefix"), nodes[3].get("platd.plat.plat_prefix")
	clat1 := nodes[0].get("clatd.clat.clat_prefix")
	say("site.conf: clat_range fddd:1337:1337::/48, plat_range fddd:1337:1338::/48, prefix4 10.130.0.0/16")
	for _, n := range nodes {
		line := fmt.Sprintf("%-6s MAC %s  CLAT %s", n.name, n.mac, n.get("clatd.clat.clat_prefix"))
		if n.exit {
			line += "  PLAT " + n.get("platd.plat.plat_prefix")
		}
		say("  %s", line)
	}
	for _, d := range []string{"platd", "clatd", "l3roamd", "prefixd"} {
		for _, n := range nodes {
			if d == "platd" && !n.exit {
				continue
			}
			l.initd(t, n, d)
		}
		if d == "clatd" {
			l.waitRoutes(t, plat1, plat2, clat1)
		}
	}
	for _, n := range nodes[:2] {
		l.dnsmasq(t, n.ns)
	}
	say("running: babeld on 4 routers; platd on both exits; clatd, l3roamd and prefixd everywhere; dnsmasq on node1 and node2")

	head("the client asks for IPv4 by DHCP at node1")
	t0 := time.Now()
	dhcp := l.Start(l.client, "dhcp-client", netlab.Helper("dhcp-client", "c0")...)
	var ip string
	var lease int
	if !netlab.WaitFor(20*time.Second, func() bool {
		_, err := fmt.Sscanf(dhcp.Log(), "lease %s %d", &ip, &lease)
		return err == nil
	}) {
		fail("no DHCP lease: %s", dhcp.Log())
	}
	say("client got %s (lease %d s) in %d ms", ip, lease, time.Since(t0).Milliseconds())
	l.waitChoice(t, "prefixd@"+l.node1, plat1, 30*time.Second)
	say("prefixd on node1 chose %s (exit1, the nearest by Babel metric)", plat1)

	head("the client's IPv4: ping and an HTTP download through CLAT (node1) and PLAT (exit1)")
	out, _ := l.Run(l.client, "ping", "-c", "5", "-i", "0.2", "-W", "2", "198.51.100.1")
	if !strings.Contains(out, " 0% packet loss") {
		fail("ping:\n%s", out)
	}
	say("ping 198.51.100.1: 5 of 5 answered, rtt %s ms", pingAvg(out))
	mbps, sum := l.httpDownload(t, 20<<20)
	say("HTTP download of 20 MiB: sha256 %s… matches, %.0f Mbit/s", sum[:12], mbps)
	clientCLAT := clatAddr(clat1, ip)
	if at := l.sessionsAt(t, l.client, clientCLAT); at != "exit1" {
		fail("the client's sessions are at %q, want exit1", at)
	}
	say("its sessions are at exit1 (platd sessions %s)", clientCLAT)
	say("\n%s", l.xlatctl(t, l.node1))

	head("exit1 fails (its mesh links cut, platd killed): traffic moves to exit2")
	pings := l.Start(l.client, "ping-failover", "ping", "-i", "0.1", "-W", "1", "-c", "150", "198.51.100.1")
	time.Sleep(time.Second)
	l.Must(l.exit1, "ip", "link", "set", "m-n1", "down")
	l.Must(l.exit1, "ip", "link", "set", "m-n1b", "down")
	l.procs["platd@"+l.exit1].Signal(syscall.SIGKILL)
	l.waitChoice(t, "prefixd@"+l.node1, plat2, 30*time.Second)
	netlab.WaitFor(30*time.Second, pings.Exited)
	lost := pingLost(pings.Log())
	say("prefixd on node1 moved to %s; the client lost %d pings sent every 100 ms: about %d ms without IPv4", plat2, lost, lost*100)
	if lost > 100 {
		fail("failover took too long: %d pings lost\n%s", lost, pings.Log())
	}
	if at := l.sessionsAt(t, l.client, clientCLAT); at != "exit2" {
		fail("after the failover the client's sessions are at %q, want exit2", at)
	}
	say("the client's new sessions are at exit2")

	head("the client walks to node2 with a download running")
	fetch, progress := startDownload(t, l.Lab, l.inet, l.client, "demo", "198.51.100.1:5001", 8000000, 1000000)
	roamPings := l.Start(l.client, "ping-roam", "ping", "-i", "0.1", "-W", "1", "-c", "60", "198.51.100.1")
	time.Sleep(2 * time.Second)
	moved := time.Now()
	l.moveClient(t, l.node1, l.node2)
	if !netlab.WaitFor(10*time.Second, func() bool { return l.servesClient(t, l.node2) }) {
		fail("node2 did not take the client over")
	}
	if !finished(fetch, 8000000, 30*time.Second) {
		fail("the download across the roam: %s", fetch.Log())
	}
	gap := firstByteAfter(readProgress(t, progress), moved, moved.Add(4*time.Second))
	netlab.WaitFor(15*time.Second, roamPings.Exited)
	say("8 MB at 1 MB/s, byte-exact; %.0f ms from the move to the first byte through node2; a ping every 100 ms lost %d of 60",
		gap, pingLost(roamPings.Log()))
	if pingLost(roamPings.Log()) > 10 {
		fail("the running ping lost too much across the roam:\n%s", roamPings.Log())
	}
	dhcp.Signal(syscall.SIGUSR1)
	if !netlab.WaitFor(15*time.Second, func() bool {
		return strings.Contains(dhcp.Log(), "renewed ") || strings.Contains(dhcp.Log(), "renew failed")
	}) ||
		!strings.Contains(dhcp.Log(), "renewed "+ip+" ") {
		fail("DHCP renewal at node2: %s", dhcp.Log())
	}
	say("its DHCP renewal at node2 kept %s", ip)
	view := l.xlatctl(t, l.node2)
	say("\n%s", view)
	if !strings.Contains(view, ip+" (lease from "+clat1) || !strings.Contains(view, "* "+plat2) {
		fail("xlatctl on node2 does not show the roamed client and the PLAT in use")
	}

	var rss []string
	for _, d := range []string{"clatd@" + l.node2, "prefixd@" + l.node2, "l3roamd@" + l.node2, "platd@" + l.exit2} {
		rss = append(rss, fmt.Sprintf("%s %.1f MiB", strings.Split(d, "@")[0], float64(l.procs[d].RSS())/1024))
	}
	say("memory (RSS) on node2 and exit2: %s", strings.Join(rss, ", "))

	say("\ndemo: all %d steps worked", step)
	if os.Getenv("KEEP") != "" {
		say("\nThe lab stays up (KEEP=1). Enter a namespace:")
		for _, n := range append(nodes, demoNode{ns: l.client, name: "client"}, demoNode{ns: l.inet, name: "inet"}) {
			say("  %-6s ip netns exec %s bash", n.name, n.ns)
		}
		say("Daemon sockets are in %s, e.g.:", l.Dir)
		say("  ip netns exec %s %s xlatctl -run-dir %s -clatd-socket %s -prefixd-socket %s -l3roamd-socket %s",
			l.node2, bin("gluon-464xlat"), l.Dir, l.sock["clatd@"+l.node2], l.sock["prefixd@"+l.node2], l.sock["l3roamd@"+l.node2])
		say("Ctrl-C tears everything down.")
		close(keeping)
		<-sig
		say("tearing down")
	}
}

// demoSite is the lab's site.conf, as a Gluon site would have it.
const demoSite = `{
	site_name = 'gluon-464xlat demo',
	site_code = 'demo',
	prefix4 = '10.130.0.0/16',
	prefix6 = '2001:db8:c::/64',
	node_client_prefix6 = 'fddd:1337:2::/64',
	next_node = { ip4 = '10.130.0.1' },
	clat_range = 'fddd:1337:1337::/48',
	plat_range = 'fddd:1337:1338::/48',
	xlat_roam_key = 'the demo mesh secret',
	xlat_plat_allow = { '198.51.100.0/24' },
}
`

type demoNode struct {
	ns, name, mac string
	ifs           []string
	exit          bool
	uci           map[string]string // config.section.option -> value, from the upgrade scripts
	state         string            // the UCI file the init scripts read
	root          string            // the node's IPKG_INSTROOT
}

func (n demoNode) get(key string) string { return n.uci[key] }

// gluonUCI runs the Gluon upgrade scripts for node n (check_site.lua
// first) and adds the lab's paths; it returns the UCI as a map and writes
// the file the init scripts read.
func (l *meshLab) gluonUCI(t *testing.T, n *demoNode, site string, i int) map[string]string {
	t.Helper()
	n.root = filepath.Join(l.Dir, "root-"+n.name)
	os.MkdirAll(filepath.Join(n.root, "etc"), 0o755)
	n.state = filepath.Join(l.Dir, "uci-"+n.name)
	base := fmt.Sprintf("network.loopback=interface\nnetwork.loopback.ip6addr='%s%d/128'\n", meshNodeIPs, i)
	if n.exit {
		base += "platd.plat=platd\nplatd.plat.enabled='1'\n"
	}
	os.WriteFile(n.state, []byte(base), 0o644)
	lua := func(args ...string) {
		cmd := exec.Command("lua5.1", append([]string{"../packages/testdata/gluon-harness.lua"}, args...)...)
		cmd.Env = append(os.Environ(), "LUA_PATH=../packages/gluon-464xlat-clat/luasrc/usr/lib/lua/?.lua;;", "IPKG_INSTROOT="+n.root)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", args, err, out)
		}
	}
	lua("check", "../packages/gluon-464xlat-clat/check_site.lua", site)
	scripts := []string{"../packages/gluon-464xlat-clat/luasrc/lib/gluon/upgrade/560-gluon-464xlat-clat"}
	if n.exit {
		scripts = append(scripts, "../packages/gluon-464xlat-plat/luasrc/lib/gluon/upgrade/561-gluon-464xlat-plat")
	}
	for _, s := range scripts {
		lua("upgrade", s, site, site, n.mac, n.state)
	}
	uci := readUCI(t, n.state)
	sock := func(d string) string { return filepath.Join(l.Dir, d+"-"+n.ns+".sock") }
	for k, v := range map[string]string{
		"clatd.clat.socket": sock("clatd"), "platd.plat.socket": sock("platd"), "platd.plat.wan_dev": "wan",
		"prefixd.prefixd.socket": sock("prefixd"), "prefixd.prefixd.babel": l.sock["babeld@"+n.ns],
		"prefixd.prefixd.clatd_socket": sock("clatd"), "prefixd.prefixd.l3roamd_socket": sock("l3roamd"),
		"l3roamd.l3roamd.socket": sock("l3roamd"), "l3roamd.l3roamd.key_file": filepath.Join(n.root, "etc/l3roamd.key"),
		"l3roamd.l3roamd.dhcp_leases": filepath.Join(l.Dir, "leases-"+n.ns), "l3roamd.l3roamd.mesh_ifs": strings.Join(n.ifs, ","),
		// This mesh's hand-built nodes route their clients on br-client; a
		// Gluon node (lab/gluon) on local-node, as the upgrade script sets.
		"clatd.clat.client_dev": "br-client", "l3roamd.l3roamd.client_dev": "br-client", "l3roamd.l3roamd.client_bridge": "br-client",
	} {
		uci[k] = v
	}
	writeUCI(t, n.state, uci)
	return uci
}

var uciLine = regexp.MustCompile(`^([\w-]+\.[\w-]+(?:\.[\w-]+)?)=(.*)$`)

func readUCI(t *testing.T, path string) map[string]string {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]string{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		if g := uciLine.FindStringSubmatch(s.Text()); g != nil {
			m[g[1]] = strings.Trim(g[2], "'")
		}
	}
	return m
}

// writeUCI writes `uci show` lines, sorted, each section before its
// options; a section the lab added options to without its line gets one
// (of the config's own type: platd.plat is a "platd").
func writeUCI(t *testing.T, path string, m map[string]string) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	written := map[string]bool{}
	for _, k := range keys {
		if strings.Count(k, ".") == 1 {
			fmt.Fprintf(&b, "%s=%s\n", k, m[k])
			written[k] = true
		}
	}
	for _, k := range keys {
		if strings.Count(k, ".") != 2 {
			continue
		}
		if sec := k[:strings.LastIndex(k, ".")]; !written[sec] {
			fmt.Fprintf(&b, "%s=%s\n", sec, strings.SplitN(k, ".", 2)[0])
			written[sec] = true
		}
		fmt.Fprintf(&b, "%s='%s'\n", k, m[k])
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// initd starts daemon d on node n the way procd would: the command line is
// what its init script builds from the node's UCI.
func (l *meshLab) initd(t *testing.T, n demoNode, d string) {
	t.Helper()
	out := filepath.Join(l.Dir, "cmd-"+d+"-"+n.name)
	if b, err := exec.Command("sh", "../lab/procd-shim.sh", "../files/etc/init.d/"+d, n.state, out).CombinedOutput(); err != nil {
		t.Fatalf("%s on %s: init script: %v\n%s", d, n.name, err, b)
	}
	b, _ := os.ReadFile(out)
	args := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(args) < 2 || args[0] != "/usr/sbin/"+d {
		t.Fatalf("%s on %s: init script started %q", d, n.name, args)
	}
	sock := n.get(map[string]string{"clatd": "clatd.clat.socket", "platd": "platd.plat.socket", "prefixd": "prefixd.prefixd.socket", "l3roamd": "l3roamd.l3roamd.socket"}[d])
	l.procs[d+"@"+n.ns] = l.Start(n.ns, d+"-"+n.ns, append([]string{bin(d)}, args[1:]...)...)
	l.sock[d+"@"+n.ns] = sock
	waitUp(t, sock, l.procs[d+"@"+n.ns])
}

// waitRoutes waits until node1 has both PLATs and the exits know node1's
// CLAT prefix (the way back).
func (l *meshLab) waitRoutes(t *testing.T, p1, p2, clat1 string) {
	if !netlab.WaitFor(40*time.Second, func() bool {
		n1, _ := l.Run(l.node1, "ip", "-6", "route")
		x1, _ := l.Run(l.exit1, "ip", "-6", "route", "show", clat1)
		x2, _ := l.Run(l.exit2, "ip", "-6", "route", "show", clat1)
		return strings.Contains(n1, p1+" via") && strings.Contains(n1, p2+" via") && x1 != "" && x2 != ""
	}) {
		out, _ := l.Run(l.node1, "ip", "-6", "route")
		t.Fatalf("the mesh did not converge:\n%s", out)
	}
}

func (l *meshLab) waitChoice(t *testing.T, key, want string, within time.Duration) {
	t.Helper()
	var got string
	if !netlab.WaitFor(within, func() bool {
		got, _ = ctlsock.Query(l.sock[key], "get_platprefix")
		return got == want
	}) {
		st, _ := ctlsock.Query(l.sock[key], "status")
		t.Fatalf("%s chose %q, want %q: %s", key, got, want, st)
	}
}

// httpDownload fetches a random file of size bytes from a web server on
// the IPv4 internet and checks it; it returns Mbit/s and the checksum.
func (l *meshLab) httpDownload(t *testing.T, size int) (float64, string) {
	t.Helper()
	dir := filepath.Join(l.Dir, "www")
	os.MkdirAll(dir, 0o755)
	blob := make([]byte, size)
	f, _ := os.Open("/dev/urandom")
	io.ReadFull(f, blob)
	f.Close()
	os.WriteFile(filepath.Join(dir, "blob"), blob, 0o644)
	want := sha256.Sum256(blob)
	l.Start(l.inet, "http-server", "python3", "-m", "http.server", "--bind", "198.51.100.1", "--directory", dir, "8080")
	time.Sleep(time.Second)
	start := time.Now()
	out := l.T(t).Must(l.client, "python3", "-c", `import hashlib, urllib.request
d = urllib.request.urlopen("http://198.51.100.1:8080/blob", timeout=60).read()
print(len(d), hashlib.sha256(d).hexdigest())`)
	secs := time.Since(start).Seconds()
	if fs := strings.Fields(out); len(fs) != 2 || fs[0] != strconv.Itoa(size) || fs[1] != hex.EncodeToString(want[:]) {
		t.Fatalf("HTTP download: %q", out)
	}
	return float64(size) * 8 / secs / 1e6, hex.EncodeToString(want[:])
}

func (l *meshLab) xlatctl(t *testing.T, ns string) string {
	out, err := l.Run(ns, bin("gluon-464xlat"), "xlatctl", "-run-dir", l.Dir, "-clatd-socket", l.sock["clatd@"+ns],
		"-prefixd-socket", l.sock["prefixd@"+ns], "-l3roamd-socket", l.sock["l3roamd@"+ns], "-platd-socket", l.sock["platd@"+ns])
	if err != nil && !strings.Contains(out, "role:") {
		t.Fatalf("xlatctl: %v %s", err, out)
	}
	return "$ xlatctl   (on " + ns + ")\n" + out
}

// clatAddr is CLAT::a.b.c.d of a client (RFC 6052 /96).
func clatAddr(clat, ip string) string {
	a := netip.MustParsePrefix(clat).Addr().As16()
	v := netip.MustParseAddr(ip).As4()
	copy(a[12:], v[:])
	return netip.AddrFrom16(a).String()
}

func pingAvg(out string) string {
	if m := regexp.MustCompile(`= [\d.]+/([\d.]+)/`).FindStringSubmatch(out); m != nil {
		return m[1]
	}
	return "?"
}

// pingLost counts the echo requests that got no reply.
func pingLost(out string) int {
	m := regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`).FindStringSubmatch(out)
	if m == nil {
		return 1 << 20
	}
	tx, _ := strconv.Atoi(m[1])
	rx, _ := strconv.Atoi(m[2])
	return tx - rx
}

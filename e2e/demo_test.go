package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gluon-464xlat/gluon-464xlat/internal/netlab"
)

// TestDemo is `make demo` (DEMO=1: narrated on stdout; KEEP=1: the lab
// stays up until Ctrl-C) and, quietly, part of make test. The mesh is made
// of Gluon nodes (lab/gluon): Gluon v2023.2.6 on OpenWrt 23.05, built from
// the pinned upstream sources, booted with procd as PID 1, this project's
// packages installed as an image build installs them; the exits' owners
// turn the PLAT on with uci and reload_config.
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

	head("the lab: four Gluon nodes (two exits, two nodes), a community server with the site's DNS, an IPv4 internet, one client")
	say("booting x1, x2 (exits), then n1, n2: procd, netifd, fw3 (iptables-legacy), dnsmasq, babeld from gluon-mesh-babel, Gluon's upgrade scripts")
	m := newGluonMesh(t)
	// Ctrl-C: tear the lab down (nodes, namespaces) before leaving; with
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
		for _, n := range []*gluonNode{m.x1, m.x2, m.n1, m.n2} {
			n.stop()
		}
		m.Close()
		os.Exit(130)
	}()
	say("lab/gluon/site/site.conf: clat_range fddd:1337:1337::/48, plat_range fddd:1337:1338::/48, prefix4 10.130.0.0/16, dns.servers fd42:1ab:0:1::53")
	for _, n := range []*gluonNode{m.x1, m.x2, m.n1, m.n2} {
		line := fmt.Sprintf("%-3s CLAT %s", n.name, strings.TrimSpace(n.must("uci", "get", "clatd.clat.clat_prefix")))
		if p := m.plat[n]; p != "" {
			line += "  PLAT " + p + " (uci set platd.plat.enabled=1; reload_config)"
		}
		say("  %s", line)
	}
	say("waiting for Babel to converge (Gluon's babeld sends a neighbour its whole table every 300 s; a lost first exchange waits for that)")
	m.converge(t, m.x1, m.x2, m.n1, m.n2)
	m.usesPLAT(t, m.n1, m.plat[m.x1], 30*time.Second)
	say("prefixd on n1 chose %s (x1, the nearest by Babel metric)", m.plat[m.x1])

	head("the client asks n1 for IPv4 by DHCP, and for a name by DNS")
	t0 := time.Now()
	_, ip, lease, dns := m.lease(t)
	say("client got %s (lease %d s, DNS %s) in %d ms from n1's dnsmasq", ip, lease, dns, time.Since(t0).Milliseconds())
	inetIP, out, err := m.lookup(gluonInetDNS, dns)
	if inetIP == "" {
		fail("%s does not resolve through %s: %v %s", gluonInetDNS, dns, err, out)
	}
	say("%s is %s (n1's dnsmasq asked the site's DNS server over IPv6 through the mesh)", gluonInetDNS, inetIP)

	head("the client's IPv4: ping and an HTTP download through CLAT (n1) and PLAT (x1)")
	out, _ = m.Run(m.client, "ping", "-c", "5", "-i", "0.2", "-W", "2", inetIP)
	if !strings.Contains(out, " 0% packet loss") {
		fail("ping:\n%s", out)
	}
	say("ping %s: 5 of 5 answered, rtt %s ms", gluonInetDNS, pingAvg(out))
	mbps, sum := httpDownload(t, m.Lab, m.inet, m.client, inetIP, 20<<20)
	say("HTTP download of 20 MiB: sha256 %s… matches, %.0f Mbit/s", sum[:12], mbps)
	say("\n$ xlatctl   (on n1)\n%s", m.n1.must("xlatctl"))

	head("x1 loses power: n1 moves to x2, through n2")
	pings := m.Start(m.client, "ping-failover", "ping", "-i", "0.1", "-W", "1", "-c", "200", inetIP)
	time.Sleep(time.Second)
	m.x1.stop()
	m.usesPLAT(t, m.n1, m.plat[m.x2], 60*time.Second)
	netlab.WaitFor(40*time.Second, pings.Exited)
	lost := pingLost(pings.Log())
	say("prefixd on n1 moved to %s; the client lost %d pings sent every 100 ms: about %d ms without IPv4", m.plat[m.x2], lost, lost*100)
	if lost > 150 {
		fail("failover took too long: %d pings lost\n%s", lost, pings.Log())
	}

	head("the client walks to n2 with a download running")
	fetch, progress := startDownload(t, m.Lab, m.inet, m.client, "demo", inetIP+":5001", 8000000, 1000000)
	roamPings := m.Start(m.client, "ping-roam", "ping", "-i", "0.1", "-W", "1", "-c", "60", inetIP)
	time.Sleep(2 * time.Second)
	moved := time.Now()
	m.moveClient(m.n1, m.n2)
	if !finished(fetch, 8000000, 40*time.Second) {
		fail("the download across the roam: %s", fetch.Log())
	}
	gap := firstByteAfter(readProgress(t, progress), moved, moved.Add(4*time.Second))
	netlab.WaitFor(15*time.Second, roamPings.Exited)
	say("8 MB at 1 MB/s, byte-exact; %.0f ms from the move to the first byte through n2; a ping every 100 ms lost %d of 60",
		gap, pingLost(roamPings.Log()))
	view := m.n2.must("xlatctl")
	say("\n$ xlatctl   (on n2)\n%s", view)
	if !strings.Contains(view, ip) {
		fail("xlatctl on n2 does not show the roamed client %s", ip)
	}
	var rss []string
	for _, d := range []string{"clatd", "prefixd", "l3roamd"} {
		kb := strings.TrimSpace(m.n2.must("sh", "-c", "grep VmRSS /proc/$(pidof "+d+")/status | tr -dc 0-9"))
		v, _ := strconv.Atoi(kb)
		rss = append(rss, fmt.Sprintf("%s %.1f MiB", d, float64(v)/1024))
	}
	say("memory (RSS) on n2: %s", strings.Join(rss, ", "))

	say("\ndemo: all %d steps worked", step)
	if os.Getenv("KEEP") != "" {
		say("\nThe lab stays up (KEEP=1). On a node, as over ssh:")
		for _, n := range []*gluonNode{m.x2, m.n1, m.n2} {
			say("  bash lab/gluon/node.sh exec %s sh    # %s", n.dir, n.name)
		}
		say("  e.g. uci show clatd; logread | grep xlat; ubus call service list; /etc/init.d/clatd restart; xlatctl")
		say("The client, the internet and the server: ip netns exec %s bash / %s / %s", m.client, m.inet, m.srv)
		say("Ctrl-C tears everything down.")
		close(keeping)
		<-sig
		say("tearing down")
	}
}

// httpDownload serves size random bytes by HTTP from srv at addr:8080 and
// fetches them in cli; it checks the SHA-256 and returns Mbit/s and the sum.
func httpDownload(t *testing.T, l *netlab.Lab, srv, cli, addr string, size int) (float64, string) {
	t.Helper()
	dir := filepath.Join(l.Dir, "www")
	os.MkdirAll(dir, 0o755)
	blob := make([]byte, size)
	f, _ := os.Open("/dev/urandom")
	io.ReadFull(f, blob)
	f.Close()
	os.WriteFile(filepath.Join(dir, "blob"), blob, 0o644)
	want := sha256.Sum256(blob)
	l.Start(srv, "http-server", "python3", "-m", "http.server", "--bind", addr, "--directory", dir, "8080")
	if !netlab.WaitFor(10*time.Second, func() bool {
		_, err := l.Run(srv, "python3", "-c", "import socket; socket.create_connection(('"+addr+"', 8080), 1)")
		return err == nil
	}) {
		t.Fatal("the HTTP server did not start")
	}
	start := time.Now()
	out := l.T(t).Must(cli, "python3", "-c", `import hashlib, urllib.request
d = urllib.request.urlopen("http://`+addr+`:8080/blob", timeout=60).read()
print(len(d), hashlib.sha256(d).hexdigest())`)
	secs := time.Since(start).Seconds()
	if fs := strings.Fields(out); len(fs) != 2 || fs[0] != strconv.Itoa(size) || fs[1] != hex.EncodeToString(want[:]) {
		t.Fatalf("HTTP download: %q", out)
	}
	return float64(size) * 8 / secs / 1e6, hex.EncodeToString(want[:])
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

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gluon-464xlat/gluon-464xlat/internal/netlab"
)

// Gluon nodes (lab/gluon): the userland of Gluon v2023.2.6 and OpenWrt
// 23.05 built from the pinned upstream sources, with this project's
// packages installed as a Gluon image build installs them, booted with
// procd as PID 1.

// gluonBuildDir keeps build.sh's result between runs (it rebuilds only
// when the pins, patches or the script change).
var gluonBuildDir = envOr("XLAT_GLUON_BUILD", "/var/tmp/gluon-464xlat-lab")

var gluonImage struct {
	once sync.Once
	dir  string
	cDir string // the image of a node that runs the C l3roamd (image.sh --c-l3roamd)
	err  error
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// gluonImageDir builds the userland (once per machine) and the lab site's
// image with this tree's packages (once per test run).
func gluonImageDir(t *testing.T) string {
	t.Helper()
	gluonImage.once.Do(func() {
		run := func(name string, args ...string) error {
			cmd := exec.Command(name, args...)
			cmd.Dir = ".."
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("%s %v: %v\n%s", name, args, err, out)
			}
			return nil
		}
		if gluonImage.err = run("bash", "lab/gluon/build.sh", gluonBuildDir); gluonImage.err != nil {
			return
		}
		ipk := filepath.Join(binDir, "ipk")
		mkipk := filepath.Join(binDir, "mkipk")
		// tools/mkipk is a module of its own (nfpm stays out of the daemons' go.mod)
		if gluonImage.err = run("go", "build", "-C", "tools/mkipk", "-o", mkipk, "."); gluonImage.err != nil {
			return
		}
		if gluonImage.err = run(mkipk, "-arch", "x86_64", "-version", "0.1.0-r0",
			"-bin", bin("gluon-464xlat"), "-out", ipk,
			"packages/gluon-464xlat/nfpm.yaml", "packages/gluon-464xlat/nfpm-plat.yaml"); gluonImage.err != nil {
			return
		}
		gluonImage.dir = filepath.Join(binDir, "gluon-image")
		gluonImage.err = run("bash", "lab/gluon/image.sh", gluonBuildDir, "lab/gluon/site", gluonImage.dir,
			filepath.Join(ipk, "gluon-464xlat_0.1.0-r0_x86_64.ipk"), filepath.Join(ipk, "gluon-464xlat-plat-daemon_0.1.0-r0_x86_64.ipk"))
		if gluonImage.err != nil {
			return
		}
		gluonImage.cDir = filepath.Join(binDir, "gluon-image-c-l3roamd")
		gluonImage.err = run("bash", "lab/gluon/image.sh", gluonBuildDir, "lab/gluon/site", gluonImage.cDir, "--c-l3roamd")
	})
	if gluonImage.err != nil {
		t.Fatal(gluonImage.err)
	}
	return gluonImage.dir
}

// gluonNode is one booted node.
type gluonNode struct {
	t        *testing.T
	name     string
	ns       string // its network namespace
	dir      string
	started  bool
	cL3roamd bool // runs the C l3roamd (gluon-l3roamd) instead of this project's packages
}

// newGluonNode makes the network namespace of a node; the caller links it
// (lan0, lan1, ...: mesh and clients; wan: uplink) and then boots it.
func newGluonNode(t *testing.T, l *netlab.Lab, name string) *gluonNode {
	n := &gluonNode{t: t, name: name, ns: l.NS(name), dir: filepath.Join(l.Dir, "gluon-"+name)}
	t.Cleanup(n.stop)
	return n
}

// on is n for a subtest: its failures fail t, not the test n was made for
// (which Go reports as "subtest may have called FailNow on a parent test").
func (n *gluonNode) on(t *testing.T) *gluonNode {
	c := *n
	c.t = t
	return &c
}

// boot starts procd as the node's PID 1 and waits until init is complete.
func (n *gluonNode) boot() {
	n.t.Helper()
	n.start()
	n.waitInit()
}

// start starts procd as the node's PID 1.
func (n *gluonNode) start() {
	n.t.Helper()
	img := gluonImageDir(n.t)
	if n.cL3roamd {
		img = gluonImage.cDir
	}
	out, err := exec.Command("bash", "../lab/gluon/node.sh", "start", n.dir, n.ns, n.name, img,
		filepath.Join(gluonBuildDir, "staging")).CombinedOutput()
	if err != nil {
		n.t.Fatalf("boot %s: %v\n%s", n.name, err, out)
	}
	n.started = true
}

// waitInit waits until procd has run the node's init scripts (Gluon's 33
// upgrade scripts on the first boot among them: on 2 cores busy with other
// labs that took over a minute once).
//
// Once in some dozen CI runs a node's init stalled for minutes with netifd
// logging nothing: its logd was blocked reading the host's /proc/kmsg, which
// all nodes shared, and netifd, procd and logger on its full /dev/log
// (lab/gluon/node-init.sh now gives logd /dev/null there). Should a stall
// come back, after 150 s the test logs what every process of the node is
// blocked in, then waits up to 6 minutes in all before it fails.
func (n *gluonNode) waitInit() {
	n.t.Helper()
	complete := func() bool {
		out, _ := n.exec("timeout", "5", "logread")
		return strings.Contains(out, "procd: - init complete -")
	}
	if netlab.WaitFor(150*time.Second, complete) {
		return
	}
	n.t.Logf("%s: init not complete after 150 s; its processes:\n%s\nlog so far:\n%s", n.name, n.blockedIn(), n.log())
	if !netlab.WaitFor(210*time.Second, complete) {
		n.t.Fatalf("%s: init did not complete in 6 minutes; its processes:\n%s", n.name, n.blockedIn())
	}
	n.t.Logf("%s: init completed after the stall", n.name)
}

// blockedIn lists the node's processes with their command line, state and
// what the kernel has them blocked in (wchan and kernel stack).
func (n *gluonNode) blockedIn() string {
	out, _ := n.exec("sh", "-c", `for p in /proc/[0-9]*; do
		echo "$(basename $p) $(tr '\0' ' ' < $p/cmdline | cut -c1-100) [$(awk '/^State/{print $2}' $p/status)] wchan=$(cat $p/wchan)"
		sed 's/^/    /' $p/stack 2>/dev/null | head -12
	done`)
	return out
}

// exec runs a command on the node, as root over ssh would.
//
// Every command is bounded (2 minutes; `timeout` inside the node, so the
// command itself ends, not only nsenter): once in 30-odd boots a logread
// never returned, and the test hung (logd blocked on /proc/kmsg: see
// waitInit).
func (n *gluonNode) exec(args ...string) (string, error) {
	args = append([]string{"../lab/gluon/node.sh", "exec", n.dir, "timeout", "-k", "5", "120"}, args...)
	out, err := exec.Command("bash", args...).CombinedOutput()
	return string(out), err
}

// must runs a command on the node and fails the test if it fails.
func (n *gluonNode) must(args ...string) string {
	n.t.Helper()
	out, err := n.exec(args...)
	if err != nil {
		n.t.Fatalf("%s: %v: %v\n%s", n.name, args, err, out)
	}
	return out
}

// log is the node's syslog and console, for a failure message, without
// the lines that only drown the rest: udhcpc's discover every 3 s on a
// WAN port that has no server (counted), and kernel lines (the kernel log
// is not per namespace: every node's logd reads, and so takes, some of
// every node's kernel lines).
func (n *gluonNode) log() string {
	out, _ := n.exec("logread")
	var b strings.Builder
	discovers := 0
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.Contains(line, "udhcpc: broadcasting discover"):
			discovers++
		case strings.Contains(line, " kern."):
		default:
			b.WriteString(line + "\n")
		}
	}
	con, _ := os.ReadFile(filepath.Join(n.dir, "console.log"))
	return fmt.Sprintf("%s(%d udhcpc discovers and the kernel lines left out)\n--- console:\n%s", b.String(), discovers, con)
}

// babelDump is what the node's babeld (Gluon's, on its local port 33123)
// says it has: interfaces, neighbours, routes.
func (n *gluonNode) babelDump() string {
	out, _ := n.exec("sh", "-c", "echo dump | busybox nc ::1 33123")
	return out
}

// babelNeighbours counts the neighbours of the node's babeld.
func (n *gluonNode) babelNeighbours() int { return strings.Count(n.babelDump(), "add neighbour ") }

// network is what the node's kernel, netifd and babeld say about its
// links, for a failure message: which of them is wrong tells a dead port
// (carrier), a bridge netifd never saw up, and a Babel interface never
// added or without neighbours apart.
func (n *gluonNode) network() string {
	out, _ := n.exec("sh", "-c", `ip -br link; ip -br -6 addr show scope link; bridge link; `+
		`echo "babel routes: $(ip -6 route show proto babel | wc -l)"; `+
		`echo dump | busybox nc ::1 33123 | grep -E "^my-id|add (interface|neighbour)"; `+
		`echo "netifd up:" $(ubus call network.interface dump | jsonfilter -e '@.interface[@.up=true].interface'); `+
		`echo "netifd down:" $(ubus call network.interface dump | jsonfilter -e '@.interface[@.up=false].interface')`)
	return out
}

func (n *gluonNode) stop() {
	if !n.started {
		return
	}
	if n.t.Failed() {
		n.t.Logf("--- %s's network:\n%s", n.name, n.network())
		n.t.Logf("--- %s's log:\n%s", n.name, tailOf(n.log(), 6000))
	}
	exec.Command("bash", "../lab/gluon/node.sh", "stop", n.dir).Run()
	n.started = false
}

// running reports whether procd runs an instance of service.
func (n *gluonNode) running(service string) bool {
	out, _ := n.exec("ubus", "call", "service", "list", fmt.Sprintf(`{"name":%q}`, service))
	return strings.Contains(out, `"running": true`)
}

// bootGluonNode boots node g1 with a client (namespace c, c0) on its port
// lan0 (MAC 02:00:00:00:01:01, the node's primary MAC) and an uplink port
// wan whose other end (namespace u) serves nothing.
func bootGluonNode(t *testing.T) (*netlab.Lab, *gluonNode, string) {
	l := netlab.New(t)
	n := newGluonNode(t, l, "g1")
	client := l.NS("c")
	l.Link(n.ns, "lan0", client, "c0")
	l.Link(n.ns, "wan", l.NS("u"), "u0")
	l.Must(n.ns, "ip", "link", "set", "lan0", "address", "02:00:00:00:01:01")
	n.boot()
	return l, n, client
}

// TestGluonNodeBootsWithTheCLAT: a Gluon node boots as a router does
// (procd, Gluon's upgrade scripts on the lab site, which Gluon's and this
// project's check_site accept, netifd, fw3 with iptables-legacy, dnsmasq,
// babeld from gluon-mesh-babel), and procd runs clatd, prefixd and l3roamd
// from this project's init scripts with what the upgrade script derived.
func TestGluonNodeBootsWithTheCLAT(t *testing.T) {
	t.Parallel() // a lab of its own; it mostly waits for Babel
	l, n, client := bootGluonNode(t)

	if comm := strings.TrimSpace(n.must("cat", "/proc/1/comm")); comm != "procd" {
		t.Errorf("PID 1 is %q", comm)
	}
	// primary MAC 02:00:00:00:01:01 (lan0, the lab board's label MAC)
	if p := strings.TrimSpace(n.must("uci", "get", "clatd.clat.clat_prefix")); p != "fddd:1337:1337:200:0:101::/96" {
		t.Errorf("clat_prefix %q", p)
	}
	// the site has no node_client_prefix6: gluon.l3 derives it from domain_seed
	if p := strings.TrimSpace(n.must("uci", "get", "l3roamd.l3roamd.node_client_prefix")); !strings.HasSuffix(p, "::/64") || p == "" {
		t.Errorf("node_client_prefix %q", p)
	}
	for _, s := range []string{"network", "dnsmasq", "clatd", "prefixd", "l3roamd"} {
		if !netlab.WaitFor(20*time.Second, func() bool { return n.running(s) }) {
			t.Errorf("procd does not run %s", s)
		}
	}
	// gluon-mesh-babel's init script starts babeld with -D: it leaves procd's
	// instance and runs detached, as on a Gluon v2023.2.x router.
	if _, err := n.exec("pidof", "babeld"); err != nil {
		t.Error("babeld does not run")
	}
	// fw3 with iptables-legacy, Gluon's zones, and this package's rules in them
	ipt := n.must("iptables-legacy-save")
	for _, want := range []string{":FORWARD DROP", "-A zone_loc_client_input", "--dport 67", "zone_xlat"} {
		if !strings.Contains(ipt, want) {
			t.Errorf("iptables-legacy-save lacks %q:\n%s", want, ipt)
		}
	}
	// A client on a client port gets a lease from the node's dnsmasq as
	// Gluon configures it (dhcp.local_node, through fw3's loc_client zone)
	// and reaches the next-node address.
	dhcp := l.Start(client, "dhcp-client", netlab.Helper("dhcp-client", "c0")...)
	var ip string
	if !netlab.WaitFor(25*time.Second, func() bool { _, err := fmt.Sscanf(dhcp.Log(), "lease %s", &ip); return err == nil }) {
		t.Fatalf("no DHCP lease: %s\n%s", dhcp.Log(), ipt)
	}
	if !strings.HasPrefix(ip, "10.130.") {
		t.Errorf("lease %s, not in prefix4 10.130.0.0/16", ip)
	}
	if out, err := l.Run(client, "ping", "-c", "1", "-W", "2", "10.130.0.1"); err != nil {
		t.Errorf("the client does not reach next_node.ip4: %v\n%s", err, out)
	}
	// l3roamd learns the client on br-client and serves it on local-node
	// (its node-client IP there), and takes the node's own next-node MAC,
	// which br-client learns through local-port, for no client.
	mac := strings.TrimSpace(l.Must(client, "cat", "/sys/class/net/c0/address"))
	if !netlab.WaitFor(15*time.Second, func() bool {
		out, _ := n.exec("xlatctl", "l3roamd", "get_clients")
		return strings.Contains(out, mac)
	}) {
		out, _ := n.exec("xlatctl", "l3roamd", "get_clients")
		t.Errorf("l3roamd does not serve the client %s: %s", mac, out)
	}
	if out, _ := n.exec("xlatctl", "l3roamd", "get_clients"); strings.Contains(out, "16:41:95:40:f7:dc") {
		t.Errorf("l3roamd took the next-node MAC for a client: %s", out)
	}
	ncPrefix := strings.TrimSuffix(strings.TrimSpace(n.must("uci", "get", "l3roamd.l3roamd.node_client_prefix")), "::/64")
	if addrs := n.must("ip", "-6", "addr", "show", "dev", "local-node"); !strings.Contains(addrs, ncPrefix+":") {
		t.Errorf("no node-client IP (%s::/64) on local-node:\n%s", ncPrefix, addrs)
	}
	babel := n.must("cat", "/etc/gluon-babeld.conf")
	if !strings.Contains(babel, "redistribute ip fddd:1337:1337::/48 eq 96 allow") {
		t.Errorf("babeld does not redistribute the CLAT /96s:\n%s", babel)
	}
	// The daemons log to syslog at each line's priority (-syslog): info as
	// daemon.info, not every line as daemon.err (procd's stderr).
	for _, d := range []string{"clatd", "prefixd", "l3roamd"} {
		if !netlab.WaitFor(10*time.Second, func() bool {
			out, _ := n.exec("logread")
			return strings.Contains(out, "daemon.info "+d+"[")
		}) {
			t.Errorf("no daemon.info line of %s in logread:\n%s", d, n.log())
		}
	}
	for _, line := range strings.Split(n.must("logread"), "\n") {
		if strings.Contains(line, ".err ") && strings.Contains(line, "level=INFO") {
			t.Errorf("an info line at priority err: %s", line)
		}
	}
}

// TestGluonReconfigure: gluon-reconfigure twice gives the same UCI, and an
// owner's choice to turn clatd off survives it.
func TestGluonReconfigure(t *testing.T) {
	t.Parallel() // a lab of its own; it mostly waits for Babel
	_, n, _ := bootGluonNode(t)
	uci := func() string { return n.must("sh", "-c", "for c in /etc/config/*; do uci export ${c##*/}; done") }
	n.must("gluon-reconfigure")
	first := uci()
	n.must("gluon-reconfigure")
	if second := uci(); second != first {
		t.Errorf("the second gluon-reconfigure changed UCI:\n%s\n---\n%s", first, second)
	}
	n.must("uci", "set", "clatd.clat.enabled=0")
	n.must("uci", "commit", "clatd")
	n.must("gluon-reconfigure")
	if v := strings.TrimSpace(n.must("uci", "get", "clatd.clat.enabled")); v != "0" {
		t.Errorf("gluon-reconfigure turned clatd back on: enabled=%q", v)
	}
}

// TestGluonDaemonsRespawn: procd restarts the daemons however often they
// die: each is killed 6 times within a minute and runs again after; and
// l3roamd keeps Gluon's mesh devices across its restarts and netifd's.
func TestGluonDaemonsRespawn(t *testing.T) {
	t.Parallel() // a lab of its own; it mostly waits for Babel
	l := netlab.New(t)
	n := newGluonNode(t, l, "g1")
	gluonPorts(l, n, "02:00:00:00:01:01", true)
	l.Link(n.ns, "mesh0", l.NS("peer"), "m0") // a mesh port: Gluon's mesh VXLAN comes up on it
	bootAll(n)
	meshUp(t, n)
	daemons := []string{"clatd", "prefixd", "l3roamd"}
	pid := func(d string) string { out, _ := n.exec("pidof", d); return strings.TrimSpace(out) }
	start := time.Now()
	for i := 0; i < 6; i++ {
		for _, d := range daemons {
			if !netlab.WaitFor(15*time.Second, func() bool { return pid(d) != "" }) {
				t.Fatalf("kill %d: %s is not running", i, d)
			}
			n.must("kill", "-9", pid(d))
		}
	}
	if time.Since(start) > time.Minute {
		t.Logf("6 kills took %v", time.Since(start))
	}
	for _, d := range daemons {
		if !netlab.WaitFor(15*time.Second, func() bool { return n.running(d) && pid(d) != "" }) {
			t.Errorf("%s was not restarted after 6 deaths", d)
		}
	}

	// l3roamd keeps the mesh devices of now, not those of its start: the
	// mesh VXLAN comes up only after l3roamd started (an interface event
	// adds it); procd restarts a killed l3roamd with the command line of
	// that start; then netifd makes the VXLAN anew (another index).
	const meshIf = "mesh_other" // the wired mesh's interface; its VXLAN is a dynamic one of netifd's
	dev := strings.TrimSpace(n.must("sh", "-c", "gluon-list-mesh-interfaces | head -n 1"))
	onMesh := func(within time.Duration) (bool, string) {
		var why string
		ok := netlab.WaitFor(within, func() bool { var ok bool; ok, why = n.l3roamdOnTheMesh(); return ok })
		return ok, why
	}
	if ok, why := onMesh(20 * time.Second); !ok {
		t.Fatalf("l3roamd is not on the mesh after 6 deaths: %s", why)
	}
	n.must("ifdown", meshIf)
	n.must("/etc/init.d/l3roamd", "restart")
	if !netlab.WaitFor(15*time.Second, func() bool {
		out, err := n.exec("xlatctl", "l3roamd", "get_meshifs")
		return err == nil && !strings.Contains(out, dev)
	}) {
		t.Fatalf("%s down, l3roamd restarted: %s", meshIf, n.must("xlatctl", "l3roamd", "get_meshifs"))
	}
	n.must("ifup", meshIf)
	if ok, why := onMesh(30 * time.Second); !ok {
		t.Fatalf("%s came up after l3roamd's start: %s", meshIf, why)
	}
	old := pid("l3roamd")
	n.must("kill", "-9", old)
	if !netlab.WaitFor(15*time.Second, func() bool { p := pid("l3roamd"); return p != "" && p != old }) {
		t.Fatal("l3roamd was not restarted")
	}
	if ok, why := onMesh(15 * time.Second); !ok {
		t.Errorf("procd restarted l3roamd, which lost the mesh device that came up after its start: %s", why)
	}
	// remake has netifd take the mesh down and up (a VXLAN made anew, at
	// another index) and checks that l3roamd follows within
	remake := func(what string, within time.Duration) {
		index := func() string {
			out, _ := n.exec("sh", "-c", "ip -o link show dev "+dev+" | cut -d: -f1")
			return strings.TrimSpace(out)
		}
		before := index()
		n.must("ifup", meshIf)
		if !netlab.WaitFor(30*time.Second, func() bool { i := index(); return i != "" && i != before }) {
			t.Fatalf("%s is still index %s after ifup %s", dev, before, meshIf)
		}
		if ok, why := onMesh(within); !ok {
			t.Errorf("netifd made %s%s anew: %s", dev, what, why)
		}
	}
	remake("", 15*time.Second)

	// An owner's own list (UCI mesh_ifs, which Gluon's events leave
	// alone) is followed by name: a device on it that comes up after
	// l3roamd's start, and again when made anew, is joined.
	n.must("uci", "set", "l3roamd.l3roamd.mesh_ifs="+dev)
	n.must("uci", "commit", "l3roamd")
	n.must("ifdown", meshIf)
	n.must("/etc/init.d/l3roamd", "restart")
	if !netlab.WaitFor(15*time.Second, func() bool {
		out, _ := n.exec("sh", "-c", "tr '\\0' ' ' < /proc/$(pidof l3roamd)/cmdline")
		return strings.Contains(out, "-mesh-ifs "+dev)
	}) {
		t.Fatal("l3roamd does not run with UCI's mesh_ifs")
	}
	n.must("ifup", meshIf)
	if ok, why := onMesh(20 * time.Second); !ok {
		t.Errorf("%s of UCI's mesh_ifs came up after l3roamd's start: %s", dev, why)
	}
	remake(" of UCI's mesh_ifs", 20*time.Second)
	// (the daemon's own following did it: no event adds a device of UCI's list)
	if c, _ := n.statusOf("l3roamd")["counters"].(map[string]any); c["mesh_ifs_rejoined"] != float64(2) {
		t.Errorf("l3roamd's counters %v, want mesh_ifs_rejoined 2", c)
	}
}

// TestGluonReloadTakesTheNewDomainsPrefixes: a domain switch without a
// reboot (gluon-reload: Gluon's reload.d hooks around gluon-reconfigure)
// leaves the daemons running with the new domain's prefixes, not the old.
// The lab site has one domain; the switch is its site.json changing
// clat_range, as a domain's would, and then what gluon-switch-domain
// --no-reboot does.
func TestGluonReloadTakesTheNewDomainsPrefixes(t *testing.T) {
	t.Parallel() // a lab of its own; it mostly waits for Babel
	_, n, _ := bootGluonNode(t)
	// (site.json writes the / of a prefix as \/: the address part is replaced)
	const from, to = "fddd:1337:1337::", "fddd:1337:1339::"
	for _, d := range []string{"clatd", "l3roamd"} {
		if !netlab.WaitFor(20*time.Second, func() bool { return n.running(d) }) {
			t.Fatalf("%s does not run", d)
		}
	}
	n.must("sed", "-i", "s|"+from+"|"+to+"|", "/lib/gluon/site.json")
	// what gluon-switch-domain --no-reboot does once the domain is set
	n.must("uci", "set", "gluon.core.reconfigure=1")
	n.must("uci", "commit", "gluon")
	if out, err := n.exec("gluon-reload"); err != nil {
		t.Fatalf("gluon-reload: %v\n%s", err, out)
	}
	for _, d := range []string{"clatd", "l3roamd"} {
		var st string
		if !netlab.WaitFor(30*time.Second, func() bool {
			st, _ = n.exec("xlatctl", d, "status")
			return strings.Contains(strings.ReplaceAll(st, " ", ""), `"clat_prefix":"fddd:1337:1339:`)
		}) {
			t.Errorf("%s after gluon-reload still has the old domain's CLAT prefix: %s", d, st)
		}
	}
}

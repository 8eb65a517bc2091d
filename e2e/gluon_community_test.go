package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gluon-464xlat/gluon-464xlat/internal/netlab"
)

// What a Gluon community sees of the suite: respondd (the map), the status
// page, Config Mode, the autoupdater's hooks.

// cgi runs one of the node's gluon-web CGI programs as uhttpd would for a
// request from a browser at Config Mode's address (192.168.1.1): method,
// PATH_INFO, the browser's language, and for a POST the body and its
// content type. It returns the whole response (headers, body).
func (n *gluonNode) cgi(script, method, path, lang, contentType string, body []byte) string {
	n.t.Helper()
	env := []string{"env", "GATEWAY_INTERFACE=CGI/1.1", "REQUEST_METHOD=" + method, "PATH_INFO=" + path,
		"SCRIPT_NAME=/cgi-bin/" + script[strings.LastIndex(script, "/")+1:], "REQUEST_URI=/cgi-bin/x" + path,
		"SERVER_ADDR=192.168.1.1", "HTTP_HOST=192.168.1.1", "HTTP_ORIGIN=http://192.168.1.1", "HTTP_ACCEPT_LANGUAGE=" + lang, "CONTENT_TYPE=" + contentType,
		fmt.Sprintf("CONTENT_LENGTH=%d", len(body)), script}
	// the body on the program's stdin, as uhttpd pipes it
	return n.must(append([]string{"sh", "-c", `printf %s "$0" | base64 -d | "$@"`, base64.StdEncoding.EncodeToString(body)}, env...)...)
}

// respondd asks the node's respondd over the network as yanic does, from
// namespace ns (src "" for the kernel's choice of source address), and
// returns the replies by sender.
func respondQuery(t *testing.T, l *netlab.Lab, ns, dst, src string) map[string]map[string]any {
	t.Helper()
	out, err := l.Run(ns, netlab.Helper("respondd-query", dst, src, "3")...)
	if err != nil {
		t.Fatalf("respondd query to %s: %v\n%s", dst, err, out)
	}
	got := map[string]map[string]any{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var r netlab.RespondReply
		var reply map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		if err := json.Unmarshal(r.Reply, &reply); err != nil {
			t.Fatalf("%v: %s", err, r.Reply)
		}
		got[r.From] = reply
	}
	return got
}

// at is the value at a slash-separated path of a decoded JSON object.
func at(v any, path string) any {
	for _, k := range strings.Split(path, "/") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// statusOf is a daemon's status on the node, decoded.
func (n *gluonNode) statusOf(daemon string) map[string]any {
	n.t.Helper()
	var st map[string]any
	out := n.must("xlatctl", daemon, "status")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		n.t.Fatalf("%s status: %v\n%s", daemon, err, out)
	}
	return st
}

// statusIfUp is statusOf for a wait: nil while the daemon's socket does not
// answer (procd restarts it when its UCI changes, as reload_config does)
func (n *gluonNode) statusIfUp(daemon string) map[string]any {
	out, err := n.exec("xlatctl", daemon, "status")
	var st map[string]any
	if err != nil || json.Unmarshal([]byte(out), &st) != nil {
		return nil
	}
	return st
}

// TestGluonConfigModeTurnsOnTheExit: a node owner offers the uplink as an
// IPv4 exit in Config Mode's Advanced settings. The page is driven through
// gluon-web's own CGI program and Lua (dispatcher, form model, simple-uci),
// as a browser's request reaches it through uhttpd; German for a German
// browser. After gluon-reconfigure the node is an exit, which its respondd
// tells the network and its status page shows; the autoupdater's hooks stop
// and start what a node can spare during a download; and a community's site
// switch hides the page.
func TestGluonConfigModeTurnsOnTheExit(t *testing.T) {
	t.Parallel() // a lab of its own
	l := netlab.New(t)
	x := newGluonNode(t, l, "x1")
	client := l.NS("c")
	l.Link(x.ns, "lan0", client, "c0")
	l.Must(x.ns, "ip", "link", "set", "lan0", "address", "02:00:00:00:0a:01")
	inet := newInet(l)
	linkWAN(l, inet, x, "i1")
	startWAN(l, inet)
	x.boot()
	const cfg, page = "/lib/gluon/config-mode/www/cgi-bin/config", "/admin/xlat-exit"

	if v := strings.TrimSpace(x.must("uci", "get", "platd.plat.enabled")); v != "0" {
		t.Fatalf("platd.plat.enabled=%q before the owner chose", v)
	}
	form := x.cgi(cfg, "GET", page, "de-DE,de;q=0.9,en;q=0.8", "", nil)
	for _, want := range []string{"IPv4-Ausgang", "Den Uplink dieses Knotens als IPv4-Ausgang anbieten", `type="checkbox"`} {
		if !strings.Contains(form, want) {
			t.Fatalf("Config Mode's page lacks %q:\n%s", want, form)
		}
	}
	if strings.Contains(form, "checked") {
		t.Fatalf("the exit is offered before the owner chose:\n%s", form)
	}
	// The names of the form's fields, as the browser takes them from the page.
	var formID, flag string
	if m := regexp.MustCompile(`type="hidden" name="(id\.[0-9]+)"`).FindStringSubmatch(form); m != nil {
		formID = m[1]
	}
	if m := regexp.MustCompile(`type="checkbox" value="1" id="([^"]+)" name="([^"]+)"`).FindStringSubmatch(form); m != nil {
		flag = m[2]
	}
	if formID == "" || flag == "" {
		t.Fatalf("no form or checkbox on the page:\n%s", form)
	}
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	w.WriteField(formID, "1")
	w.WriteField(flag, "1")
	w.Close()
	saved := x.cgi(cfg, "POST", page, "en", w.FormDataContentType(), body.Bytes())
	if !strings.Contains(saved, "checked") {
		t.Fatalf("the saved page does not show the exit offered:\n%s", saved)
	}
	if v := strings.TrimSpace(x.must("uci", "get", "platd.plat.enabled")); v != "1" {
		t.Fatalf("platd.plat.enabled=%q after the owner saved", v)
	}

	// Leaving Config Mode runs gluon-reconfigure and reboots; a lab node
	// runs gluon-reconfigure and then takes the changed UCI with
	// reload_config instead of a reboot (gluon-reload, which stops and
	// starts the network too, hung for 120 s once in CI).
	x.must("gluon-reconfigure")
	x.must("reload_config")
	if !netlab.WaitFor(30*time.Second, func() bool { return x.running("platd") }) {
		t.Fatalf("platd does not run after gluon-reconfigure and reload_config:\n%s", x.log())
	}
	var plat string
	if !netlab.WaitFor(20*time.Second, func() bool {
		out, err := x.exec("xlatctl", "platd", "status")
		if err != nil {
			return false
		}
		plat, _ = at(mustJSON(t, out), "plat_prefix").(string)
		return plat != ""
	}) {
		t.Fatal("platd has no PLAT prefix")
	}
	if want := strings.TrimSpace(x.must("uci", "get", "platd.plat.plat_prefix")); plat != want {
		t.Errorf("platd serves %s, UCI says %s", plat, want)
	}

	t.Run("respondd tells the network", func(t *testing.T) {
		x := x.on(t)
		// from the client's side, as a yanic on a client network asks: to
		// the next-node link-local address on local-node (respondd's client
		// device, gluon-mesh-babel's client.dev), from a link-local address
		// (gluon-respondd's firewall rule for clients)
		ll := ""
		if !netlab.WaitFor(10*time.Second, func() bool {
			out, _ := x.exec("ip", "-6", "-o", "addr", "show", "dev", "local-node", "scope", "link")
			if f := strings.Fields(out); len(f) > 3 {
				ll = strings.Split(f[3], "/")[0]
			}
			return ll != ""
		}) {
			t.Fatal("local-node has no link-local address")
		}
		// an exit uses its own PLAT (figures that settle before the query);
		// procd restarts prefixd with the exit's PLAT meanwhile
		if !netlab.WaitFor(30*time.Second, func() bool { return at(x.statusIfUp("prefixd"), "current") == plat }) {
			t.Fatalf("the exit does not use its own PLAT: %v", x.statusIfUp("prefixd"))
		}
		var reply map[string]any
		if !netlab.WaitFor(20*time.Second, func() bool {
			for _, r := range respondQuery(t, l, client, "["+ll+"%c0]:1001", "") {
				reply = r
			}
			return reply != nil
		}) {
			t.Fatalf("no respondd reply from %s:\n%s", ll, x.log())
		}
		clatd := x.statusOf("clatd")
		for path, want := range map[string]any{
			"nodeinfo/network/xlat/plat_prefix": plat,
			"nodeinfo/network/xlat/clat_prefix": at(clatd, "clat_prefix"),
			"nodeinfo/network/xlat/client_net4": at(clatd, "client_net"),
			"nodeinfo/software/xlat/version":    at(clatd, "version"),
			"statistics/xlat/exit/ports_total":  at(x.statusOf("platd"), "sessions/ports_total"),
			"statistics/xlat/clients/total":     at(x.statusOf("l3roamd"), "clients"),
			"statistics/xlat/plat/switches":     at(x.statusOf("prefixd"), "switches_total"),
			"statistics/xlat/plat/prefix":       plat,
			"statistics/xlat/plat/own":          true,
			"nodeinfo/node_id":                  strings.ReplaceAll("02:00:00:00:0a:01", ":", ""),
		} {
			if got := at(reply, path); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s = %v, the daemons say %v", path, got, want)
			}
		}
		if roles := fmt.Sprint(at(reply, "nodeinfo/network/xlat/roles")); roles != "[clat plat]" {
			t.Errorf("roles %s, want [clat plat]", roles)
		}
	})

	t.Run("the status page shows it", func(t *testing.T) {
		x := x.on(t)
		out := x.cgi("/lib/gluon/status-page/www/cgi-bin/status", "GET", "/xlat", "en", "", nil)
		for _, want := range []string{"exit (PLAT)", plat, "<h3>CLAT</h3>", "Ports in use"} {
			if !strings.Contains(out, want) {
				t.Errorf("the status page's 464xlat view lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("the autoupdater's hooks", func(t *testing.T) {
		x := x.on(t)
		spared := []string{"platd", "prefixd", "l3roamd"}
		rss := 0
		for _, d := range spared {
			var kb int
			fmt.Sscan(x.must("sh", "-c", "grep VmRSS /proc/$(pidof "+d+")/status | tr -dc 0-9"), &kb)
			rss += kb
		}
		x.must("autoupdater-run-dir", "/usr/lib/autoupdater/download.d")
		for _, d := range spared {
			if x.running(d) {
				t.Errorf("%s still runs while the image downloads", d)
			}
		}
		if !x.running("clatd") {
			t.Error("the clients' CLAT stopped for the download")
		}
		t.Logf("download.d freed the RSS of %v: %d KiB (x86-64)", spared, rss)
		x.must("autoupdater-run-dir", "/usr/lib/autoupdater/abort.d")
		for _, d := range spared {
			if !netlab.WaitFor(20*time.Second, func() bool { return x.running(d) }) {
				t.Errorf("%s does not run again after the update was given up", d)
			}
		}
	})

	t.Run("a community hides the page", func(t *testing.T) {
		x := x.on(t)
		// site.json as Gluon compiles a site.conf with config_mode.xlat_exit.show = false
		x.must("lua", "-e", `local json = require 'jsonc'
			local f = io.open('/lib/gluon/site.json'); local s = json.parse(f:read('*a')); f:close()
			s.config_mode = s.config_mode or {}; s.config_mode.xlat_exit = {show = false}
			f = io.open('/lib/gluon/site.json', 'w'); f:write(json.stringify(s)); f:close()`)
		if out := x.cgi(cfg, "GET", page, "en", "", nil); !strings.Contains(out, "404") {
			t.Errorf("the page is still offered:\n%s", out)
		}
	})
}

func mustJSON(t *testing.T, s string) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%v: %s", err, s)
	}
	return v
}

// mapSeesIt queries respondd as yanic does from the community server srv,
// which meshes with x1: multicast on its mesh link (x1 answers) and unicast
// to n1's node address from the server's site address (fw3 lets the site
// prefix in), and checks what the map gets against the daemons' status on
// each node, with the client at n1 using x1's PLAT.
func (m *gluonMesh) mapSeesIt(t *testing.T, inetIP string) {
	// counters only grow: read before and after the query, the reply lies between
	type snap struct{ clat, platd, prefixd, l3roamd map[string]any }
	read := func(n *gluonNode) snap {
		s := snap{clat: n.statusOf("clatd"), prefixd: n.statusOf("prefixd"), l3roamd: n.statusOf("l3roamd")}
		if n == m.x1 {
			s.platd = n.statusOf("platd")
		}
		return s
	}
	between := func(name string, got, lo, hi any) {
		g, l, h := toF(got), toF(lo), toF(hi)
		if g < l || g > h {
			t.Errorf("%s = %v, the daemon counted %v before and %v after", name, got, lo, hi)
		}
	}
	if _, err := m.Run(m.client, "ping", "-c", "3", "-i", "0.2", "-W", "2", inetIP); err != nil {
		t.Fatalf("the client does not reach %s: %v", inetIP, err)
	}
	n1IP, _ := at(m.n1.statusOf("l3roamd"), "node_ip").(string)

	for _, q := range []struct {
		n        *gluonNode
		dst, src string
	}{
		{m.x1, "[ff02::2:1001%vx0]:1001", ""},
		{m.n1, "[" + n1IP + "]:1001", gluonSiteDNS},
	} {
		before := read(q.n)
		replies := respondQuery(t, m.Lab, m.srv, q.dst, q.src)
		after := read(q.n)
		if len(replies) != 1 {
			t.Fatalf("%d replies to %s, want %s's: %v", len(replies), q.dst, q.n.name, replies)
		}
		var r map[string]any
		for _, v := range replies {
			r = v
		}
		id, _ := at(r, "nodeinfo/node_id").(string)
		mac := strings.TrimSpace(q.n.must("cat", "/lib/gluon/core/sysconfig/primary_mac"))
		if id != strings.ReplaceAll(mac, ":", "") {
			t.Fatalf("the reply to %s is %s's, want %s's", q.dst, id, q.n.name)
		}
		roles := "[clat]"
		if q.n == m.x1 {
			roles = "[clat plat]"
		}
		if got := fmt.Sprint(at(r, "nodeinfo/network/xlat/roles")); got != roles {
			t.Errorf("%s: roles %s, want %s", q.n.name, got, roles)
		}
		same := map[string]any{
			"nodeinfo/network/xlat/clat_prefix": at(after.clat, "clat_prefix"),
			"statistics/xlat/plat/prefix":       at(after.prefixd, "current"),
			"statistics/xlat/plat/switches":     at(after.prefixd, "switches_total"),
			"statistics/xlat/clients/ipv4":      at(after.l3roamd, "clients_464xlat"),
			"statistics/xlat/clients/total":     at(after.l3roamd, "clients"),
		}
		for _, c := range after.prefixd["candidates"].([]any) {
			if at(c, "prefix") == at(after.prefixd, "current") {
				same["statistics/xlat/plat/metric"] = at(c, "metric")
			}
		}
		for path, want := range same {
			if got := at(r, path); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s: %s = %v, the daemons say %v", q.n.name, path, got, want)
			}
		}
		// (a daemon's TUN and its kernel fast path together)
		translated := func(st map[string]any, d string) float64 {
			return toF(at(st, "counters/out_"+d)) + toF(at(st, "fastpath_counters/fast_"+d))
		}
		for _, d := range []string{"4to6", "6to4"} {
			between(q.n.name+" clat translated "+d, at(r, "statistics/xlat/clat/translated/"+d),
				translated(before.clat, d), translated(after.clat, d))
		}
		if q.n == m.n1 {
			if at(r, "statistics/xlat/plat/prefix") != m.plat[m.x1] {
				t.Errorf("n1 tells the map it uses %v, want x1's %s", at(r, "statistics/xlat/plat/prefix"), m.plat[m.x1])
			}
			if toF(at(r, "statistics/xlat/clients/ipv4")) < 1 || toF(at(r, "statistics/xlat/clat/translated/4to6")) < 3 {
				t.Errorf("n1 tells no IPv4 client or no translated packets: %v", at(r, "statistics/xlat"))
			}
		}
		if q.n == m.x1 {
			if at(r, "nodeinfo/network/xlat/plat_prefix") != m.plat[m.x1] {
				t.Errorf("x1's nodeinfo has PLAT %v, want %s", at(r, "nodeinfo/network/xlat/plat_prefix"), m.plat[m.x1])
			}
			for _, d := range []string{"4to6", "6to4"} {
				between("x1 exit translated "+d, at(r, "statistics/xlat/exit/translated/"+d),
					translated(before.platd, d), translated(after.platd, d))
			}
			if got, want := at(r, "statistics/xlat/exit/ports_total"), at(after.platd, "sessions/ports_total"); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("x1: ports_total %v, platd says %v", got, want)
			}
			if toF(at(r, "statistics/xlat/exit/translated/6to4")) < 3 {
				t.Errorf("x1 tells no translated packets of n1's client: %v", at(r, "statistics/xlat/exit"))
			}
		}
	}
}

func toF(v any) float64 {
	f, _ := v.(float64)
	return f
}

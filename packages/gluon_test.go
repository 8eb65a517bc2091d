// Package packages holds the OpenWrt and Gluon packages. Its tests run
// their Lua (check_site.lua, upgrade scripts) under lua5.1 with a Gluon
// stand-in, and their procd init scripts with a procd stand-in, against the
// flags the real daemons accept.
package packages

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const (
	harness   = "testdata/gluon-harness.lua"
	clatCheck = "gluon-464xlat-clat/check_site.lua"
	platCheck = "gluon-464xlat-plat/check_site.lua"
	clatUp    = "gluon-464xlat-clat/luasrc/lib/gluon/upgrade/560-gluon-464xlat-clat"
	platUp    = "gluon-464xlat-plat/luasrc/lib/gluon/upgrade/561-gluon-464xlat-plat"
	luaPath   = "gluon-464xlat-clat/luasrc/usr/lib/lua/?.lua;;"
)

func lua(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("lua5.1"); err != nil {
		t.Fatal("lua5.1 is needed (apt-get install lua5.1; make deps)")
	}
	cmd := exec.Command("lua5.1", append([]string{harness}, args...)...)
	cmd.Env = append(append(os.Environ(), "LUA_PATH="+luaPath), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func checkSite(t *testing.T, site string, domains ...string) (string, error) {
	t.Helper()
	var out strings.Builder
	for _, check := range []string{clatCheck, platCheck} {
		o, err := lua(t, nil, append([]string{"check", check, site}, domains...)...)
		out.WriteString(o)
		if err != nil {
			return out.String(), err
		}
	}
	return out.String(), nil
}

func TestCheckSiteAcceptsGoodSites(t *testing.T) {
	for name, args := range map[string][]string{
		"single site":              {"testdata/sites/good/site.conf"},
		"two domains":              {"testdata/sites/good-domains/site.conf", "testdata/sites/good-domains/domains/north.conf", "testdata/sites/good-domains/domains/south.conf"},
		"RFC 8215 plat_range, :0:": {"testdata/sites/rfc8215/site.conf"},
	} {
		if out, err := checkSite(t, args[0], args[1:]...); err != nil {
			t.Errorf("%s: rejected: %v\n%s", name, err, out)
		}
	}
}

// Every bad config fails and the message names the key that is wrong.
func TestCheckSiteRejectsBadSitesNamingTheKey(t *testing.T) {
	good := map[string]string{
		"prefix4":       "'10.130.0.0/16'",
		"next_node":     "{ ip4 = '10.130.0.1' }",
		"clat_range":    "'fddd:1337:1337::/48'",
		"plat_range":    "'fddd:1337:1338::/48'",
		"xlat_roam_key": "'the roaming key of this mesh'",
	}
	for _, c := range []struct{ key, value, want string }{
		{"clat_range", "", "expected clat_range to be an IPv6 /48"},
		{"clat_range", "'fddd:1337:1337::/64'", "expected clat_range"},
		{"clat_range", "'fddd:1337:1337::'", "expected clat_range"},
		{"clat_range", "'fddd:zz::/48'", "expected clat_range"},
		{"clat_range", "'fddd:1337:1337:1::/48'", "no bits set after the 48th"},
		{"clat_range", "'1:2:3:4:5:6:7:8:9/48'", "expected clat_range"},
		{"clat_range", "'fddd::1337::/48'", "expected clat_range"},
		{"clat_range", "'10.0.0.0/48'", "expected clat_range"},
		{"clat_range", "48", "expected clat_range"},
		{"plat_range", "", "expected plat_range"},
		{"plat_range", "'64:ff9b::/96'", "expected plat_range"},
		{"plat_range", "'fddd:1337:1337:0::/48'", "expected plat_range to be a different /48 from clat_range"},
		{"prefix4", "'10.130.0.0'", "expected prefix4"},
		{"xlat_roam_key", "", "expected xlat_roam_key to be a string of at least 16 characters"},
		{"xlat_roam_key", "'short'", "expected xlat_roam_key"},
		{"next_node", "{}", "expected next_node.ip4"},
		{"xlat_plat_allow", "{ '10.0.0.0' }", "expected xlat_plat_allow to be an array of IPv4 prefixes"},
		{"xlat_plat_allow", "'10.0.0.0/8'", "expected xlat_plat_allow"},
		{"config_mode", "{ xlat_exit = { show = 'no' } }", "expected config_mode.xlat_exit.show"},
	} {
		t.Run(c.key+"="+c.value, func(t *testing.T) {
			var b strings.Builder
			b.WriteString("{\n")
			for k, v := range good {
				if k == c.key {
					v = c.value
				}
				if v != "" {
					fmt.Fprintf(&b, "\t%s = %s,\n", k, v)
				}
			}
			if _, ok := good[c.key]; !ok {
				fmt.Fprintf(&b, "\t%s = %s,\n", c.key, c.value)
			}
			b.WriteString("}\n")
			site := filepath.Join(t.TempDir(), "site.conf")
			os.WriteFile(site, []byte(b.String()), 0o644)
			out, err := checkSite(t, site)
			if err == nil {
				t.Fatalf("accepted:\n%s", b.String())
			}
			if !strings.Contains(out, "Error in site.conf: ") || !strings.Contains(out, c.want) {
				t.Fatalf("message %q does not contain %q", out, c.want)
			}
		})
	}
}

// The ranges are domain keys: in site.conf of a multi-domain site they are
// refused, with the key named.
func TestCheckSiteRangesAreDomainKeys(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "site.conf"), []byte("{ clat_range = 'fddd:1337:1337::/48' }\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "north.conf"), []byte("{ prefix4 = '10.130.0.0/16', next_node = { ip4 = '10.130.0.1' }, plat_range = 'fddd:1337:1338::/48' }\n"), 0o644)
	out, err := checkSite(t, filepath.Join(dir, "site.conf"), filepath.Join(dir, "north.conf"))
	if err == nil || !strings.Contains(out, "clat_range is allowed in domain configuration only") {
		t.Fatalf("err %v, %s", err, out)
	}
}

// node is one router's UCI state and root, before and after the upgrade
// scripts.
type node struct {
	t     *testing.T
	state string
	root  string
	mac   string
}

func newNode(t *testing.T, mac, uciState string) *node {
	n := &node{t: t, state: filepath.Join(t.TempDir(), "uci"), root: t.TempDir(), mac: mac}
	os.WriteFile(n.state, []byte(uciState), 0o644)
	os.MkdirAll(filepath.Join(n.root, "etc"), 0o755)
	// what gluon-mesh-babel's 300-gluon-mesh-babel-mkconfig leaves
	os.WriteFile(filepath.Join(n.root, "etc/gluon-babeld.conf"), []byte("ipv6-subtrees true\nredistribute ip 2000::/3 allow\n"), 0o644)
	return n
}

func (n *node) upgrade(script string) {
	n.t.Helper()
	site := "testdata/sites/good-domains/site.conf"
	dom := "testdata/sites/good-domains/domains/north.conf"
	if out, err := lua(n.t, []string{"IPKG_INSTROOT=" + n.root}, "upgrade", script, site, dom, n.mac, n.state); err != nil {
		n.t.Fatalf("%s: %v\n%s", script, err, out)
	}
}

// uciSet changes one option in the node's UCI state, as `uci set` would.
func (n *node) uciSet(key, value string) {
	u, _ := os.ReadFile(n.state)
	var out []string
	for _, l := range strings.Split(strings.TrimRight(string(u), "\n"), "\n") {
		if !strings.HasPrefix(l, key+"=") {
			out = append(out, l)
		}
	}
	out = append(out, key+"='"+value+"'")
	os.WriteFile(n.state, []byte(strings.Join(out, "\n")+"\n"), 0o644)
}

func (n *node) files() (string, string) {
	u, _ := os.ReadFile(n.state)
	b, _ := os.ReadFile(filepath.Join(n.root, "etc/gluon-babeld.conf"))
	return string(u), string(b)
}

// existing is a node's UCI before: Gluon's own sections, which the
// scripts must leave alone.
const existing = `network.loopback=interface
network.loopback.ip6addr='fddd:1337:1::1234/128'
dhcp.dnsmasq0=dnsmasq
dhcp.dnsmasq0.domainneeded='1'
firewall.mesh=zone
firewall.mesh.name='mesh'
platd.plat=platd
platd.plat.enabled='1'
`

func TestUpgradeScriptsWriteUCIFromSiteAndMAC(t *testing.T) {
	n := newNode(t, "12:34:56:78:9a:bc", existing)
	n.upgrade(clatUp)
	n.upgrade(platUp)
	uci, babel := n.files()
	for _, want := range []string{
		// DESIGN.md section 2: the /48 followed by the 48-bit primary MAC
		"clatd.clat.clat_prefix='fddd:1337:1337:1234:5678:9abc::/96'",
		"clatd.clat.client_net='10.130.0.0/16'",
		"clatd.clat.enabled='1'",
		"prefixd.prefixd.plat_range='fddd:1337:1338::/48'",
		"prefixd.prefixd.probe_src='fddd:1337:1337:1234:5678:9abc:c000:2'",
		"prefixd.prefixd.own_plat='fddd:1337:1338:1234:5678:9abc::/96'",
		"platd.plat.plat_prefix='fddd:1337:1338:1234:5678:9abc::/96'",
		"platd.plat.clat_range='fddd:1337:1337::/48'",
		"platd.plat.enabled='1'", // the admin's choice is kept
		"platd.plat.allow='198.51.100.0/24'",
		"firewall.xlat.device='clat' 'plat'",
		"firewall.xlat_wan.dest='wan'",
		"firewall.mesh_l3roamd.dest_port='5523-5524'",
		"firewall.loc_client_xlat.dest='xlat'",
		"dhcp.local_node.limit='65533'",
		"dhcp.local_node.ignore='0'",
		"dhcp.local_node.dhcp_option='3,10.130.0.1' '6,10.130.0.1'",
		"firewall.loc_client_dhcp.dest_port='67'",
		"clatd.clat.client_dev='local-node'",
		"dhcp.dnsmasq0.authoritative='1'",
		"dhcp.dnsmasq0.domainneeded='1'",
		"firewall.mesh.name='mesh'",
		"l3roamd.l3roamd.node_ip='fddd:1337:1::1234'",
		"l3roamd.l3roamd.node_client_prefix='fddd:1337:2::/64'",
		"l3roamd.l3roamd.clat_prefix='fddd:1337:1337:1234:5678:9abc::/96'",
		"l3roamd.l3roamd.key_file='/etc/l3roamd.key'",
	} {
		if !strings.Contains(uci, want+"\n") {
			t.Errorf("missing %s in\n%s", want, uci)
		}
	}
	if strings.Contains(uci, "xlat_clients") {
		t.Errorf("a second DHCP section for local_node:\n%s", uci)
	}
	if b, err := os.ReadFile(filepath.Join(n.root, "etc/l3roamd.key")); err != nil || string(b) != "the roaming key of this mesh\n" {
		t.Errorf("roaming key file: %q %v", b, err)
	} else if fi, _ := os.Stat(filepath.Join(n.root, "etc/l3roamd.key")); fi.Mode().Perm() != 0o600 {
		t.Errorf("roaming key file mode %v, want 0600", fi.Mode().Perm())
	}
	for _, want := range []string{"redistribute ip 2000::/3 allow\n", "redistribute ip fddd:1337:1337::/48 eq 96 allow\n", "redistribute ip fddd:1337:1338::/48 eq 96 allow\n",
		"redistribute ip fddd:1337:1337::/48 eq 128 proto 158 allow\n"} {
		if !strings.Contains(babel, want) {
			t.Errorf("babeld config lacks %q:\n%s", want, babel)
		}
	}
}

// Gluon runs the upgrade scripts on every upgrade: a second run changes
// nothing.
func TestUpgradeScriptsAreIdempotent(t *testing.T) {
	n := newNode(t, "02:00:00:00:00:01", existing)
	n.upgrade(clatUp)
	n.upgrade(platUp)
	u1, b1 := n.files()
	n.upgrade(clatUp)
	n.upgrade(platUp)
	u2, b2 := n.files()
	if u1 != u2 || b1 != b2 {
		t.Fatalf("second run changed state:\n%s\n---\n%s\n---\n%s\n---\n%s", u1, u2, b1, b2)
	}
	// An owner who turns a daemon off keeps it off through gluon-reconfigure.
	n.uciSet("clatd.clat.enabled", "0")
	n.upgrade(clatUp)
	if u, _ := n.files(); !strings.Contains(u, "clatd.clat.enabled='0'\n") {
		t.Errorf("the upgrade script turned clatd back on:\n%s", u)
	}
	// RFC 5952 text form of a MAC with zero groups
	if !strings.Contains(u1, "clatd.clat.clat_prefix='fddd:1337:1337:200:0:1::/96'\n") {
		t.Errorf("prefix of 02:00:00:00:00:01:\n%s", u1)
	}
}

func TestUpgradeScriptFailsClearlyWithoutMAC(t *testing.T) {
	n := newNode(t, "", "")
	out, err := lua(t, []string{"IPKG_INSTROOT=" + n.root}, "upgrade", clatUp, "testdata/sites/good/site.conf", "testdata/sites/good/site.conf", "nonsense", n.state)
	if err == nil || !strings.Contains(out, "no CLAT prefix from clat_range fddd:1337:1337::/48 and primary MAC nonsense") {
		t.Fatalf("err %v: %s", err, out)
	}
}

package packages

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// startCommand runs an init script's start_service through the procd
// stand-in on UCI state and returns the command procd would run.
func startCommand(t *testing.T, script, uciState string) []string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "cmd")
	if b, err := exec.Command("sh", "../lab/procd-shim.sh", "../files/etc/init.d/"+script, uciState, out).CombinedOutput(); err != nil {
		t.Fatalf("%s start_service: %v\n%s", script, err, b)
	}
	b, _ := os.ReadFile(out)
	if len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// From site.conf to a running daemon: the upgrade scripts write UCI, the
// init scripts turn it into flags, and the real daemon accepts them.
func TestInitScriptsStartDaemonsWithFlagsTheyAccept(t *testing.T) {
	multi := filepath.Join(t.TempDir(), "gluon-464xlat")
	if b, err := exec.Command("go", "build", "-o", multi, "../cmd/gluon-464xlat").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, b)
	}
	n := newNode(t, "12:34:56:78:9a:bc", existing+"platd.plat.wan_dev='br-wan'\n")
	n.upgrade(clatUp)
	n.upgrade(platUp)
	// an admin's extra EAMs (a UCI list)
	f, err := os.OpenFile(n.state, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("clatd.clat.eam='192.0.2.0/24=2001:db8:1::/120' '198.51.100.7/32=2001:db8:2::7/128'\n")
	f.Close()
	for _, c := range []struct {
		daemon string
		want   []string
	}{
		{"clatd", []string{"-clat-prefix", "fddd:1337:1337:1234:5678:9abc::/96", "-client-net", "10.130.0.0/16", "-client-dev", "local-node",
			"-eam", "192.0.2.0/24=2001:db8:1::/120", "-fastpath", "auto"}},
		{"platd", []string{"-plat-prefix", "fddd:1337:1338:1234:5678:9abc::/96", "-clat-range", "fddd:1337:1337::/48", "-wan-dev", "br-wan", "-allow", "198.51.100.0/24", "-fastpath", "auto"}},
		{"prefixd", []string{"-plat-range", "fddd:1337:1338::/48", "-babel", "[::1]:33123", "-own-plat", "fddd:1337:1338:1234:5678:9abc::/96", "-probe-src", "fddd:1337:1337:1234:5678:9abc:c000:2"}},
		{"l3roamd", []string{"-node-ip", "fddd:1337:1::1234", "-node-client-prefix", "fddd:1337:2::/64", "-client-prefix", "fddd:1337:1::/64",
			"-clat-prefix", "fddd:1337:1337:1234:5678:9abc::/96", "-own-plat", "fddd:1337:1338:1234:5678:9abc::/96", "-roam-key-file", "/etc/l3roamd.key", "-backend", "iptables"}}, // Gluon: fw3 + iptables-legacy (560),
	} {
		args := startCommand(t, c.daemon, n.state)
		if len(args) == 0 || args[0] != "/usr/sbin/"+c.daemon {
			t.Fatalf("%s: command %q", c.daemon, args)
		}
		for i := 0; i < len(c.want); i += 2 {
			j := slices.Index(args, c.want[i])
			if j < 0 || j+1 >= len(args) || args[j+1] != c.want[i+1] {
				t.Errorf("%s: want %s %s in %q", c.daemon, c.want[i], c.want[i+1], args)
			}
		}
		// The daemon parses every flag (an unknown one exits 2) before
		// -version makes it print and exit 0.
		// (-roam-key-file is read while parsing: point it at a real key)
		key := filepath.Join(t.TempDir(), "key")
		os.WriteFile(key, []byte("the roaming key of this mesh\n"), 0o600)
		for i := range args {
			if args[i] == "/etc/l3roamd.key" {
				args[i] = key
			}
		}
		cmd := exec.Command(multi, append(append([]string{c.daemon}, args[1:]...), "-version")...)
		if out, err := cmd.CombinedOutput(); err != nil || !strings.HasPrefix(string(out), c.daemon+" ") {
			t.Errorf("%s rejects its init script's flags %q: %v %s", c.daemon, args[1:], err, out)
		}
	}
}

func TestInitScriptsStartNothingWhenDisabled(t *testing.T) {
	state := filepath.Join(t.TempDir(), "uci")
	os.WriteFile(state, []byte("clatd.clat=clatd\nclatd.clat.enabled='0'\nclatd.clat.clat_prefix='fddd::/96'\nplatd.plat=platd\nprefixd.prefixd=prefixd\n"), 0o644)
	for _, d := range []string{"clatd", "platd", "prefixd", "l3roamd"} {
		if args := startCommand(t, d, state); args != nil {
			t.Errorf("%s disabled but started: %q", d, args)
		}
	}
}

// prefixd counts the node's own PLAT only while platd is enabled there.
func TestPrefixdInitOmitsOwnPLATWhenPlatdIsOff(t *testing.T) {
	n := newNode(t, "12:34:56:78:9a:bc", strings.Replace(existing, "platd.plat.enabled='1'", "platd.plat.enabled='0'", 1))
	n.upgrade(clatUp)
	n.upgrade(platUp)
	if args := startCommand(t, "prefixd", n.state); slices.Contains(args, "-own-plat") {
		t.Errorf("own PLAT passed with platd off: %q", args)
	}
	if args := startCommand(t, "platd", n.state); args != nil {
		t.Errorf("platd started while disabled: %q", args)
	}
}

package addrplan

import (
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
)

// The Go plan and the Lua library gluon.xlat (what check_site and the
// upgrade scripts use on a node) give the same /96 and the same
// ::192.0.0.1/::192.0.0.2 addresses for the same range and MAC.
func TestLuaLibraryAgrees(t *testing.T) {
	if _, err := exec.LookPath("lua5.1"); err != nil {
		t.Skip("lua5.1 not installed (make deps)")
	}
	cases := [][2]string{
		{"fddd:1337:1337::/48", "12:34:56:78:9a:bc"},
		{"fddd:1337:1338::/48", "02:00:00:00:0a:01"},
		{"2001:db8:0::/48", "00:00:00:00:00:00"},
		{"fd00:0:1::/48", "ff:ff:ff:ff:ff:fe"},
		{"2a03:2260:1001::/48", "a0:f3:c1:00:10:01"},
	}
	for _, c := range cases {
		r := netip.MustParsePrefix(c[0])
		mac, _ := net.ParseMAC(c[1])
		p, err := NodePrefix(r, mac)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{p.String(), PLATMgmt(p).String(), CLATOwn(p).String()}
		script := `package.path = '../../packages/gluon-464xlat-clat/luasrc/usr/lib/lua/?.lua;' .. package.path
local x = require('gluon.xlat')
print(x.node_prefix(arg[1], arg[2])); print(x.node_addr(arg[1], arg[2], 1)); print(x.node_addr(arg[1], arg[2], 2))`
		cmd := exec.Command("lua5.1", "-", c[0], c[1])
		cmd.Stdin = strings.NewReader(script)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", c, err, out)
		}
		if got := strings.Fields(string(out)); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%v: Lua says %v, Go %v", c, got, want)
		}
	}
}

func TestNodePrefixRefusesWhatIsNoPlan(t *testing.T) {
	mac, _ := net.ParseMAC("12:34:56:78:9a:bc")
	for _, r := range []string{"fddd:1337:1337::/64", "fddd:1337:1337:1::/48", "10.0.0.0/8"} {
		if _, err := NodePrefix(netip.MustParsePrefix(r), mac); err == nil {
			t.Errorf("%s accepted", r)
		}
	}
}

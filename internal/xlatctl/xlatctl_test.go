package xlatctl

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gluon-464xlat/gluon-464xlat/internal/ctlsock"
)

// Daemons answering with canned replies (the real ones answer in TestDemo):
// the summary names the role, the chosen PLAT with its candidates, the
// roamed client and the missing daemon; --json carries all of it.
func TestNodeAtAGlance(t *testing.T) {
	dir := t.TempDir()
	reply := func(s string) ctlsock.Handler {
		return func([]string) (any, error) { var v any; json.Unmarshal([]byte(s), &v); return v, nil }
	}
	for name, cmds := range map[string]map[string]ctlsock.Handler{
		"clatd": {"status": reply(`{"clat_prefix":"fddd:1337:1337::1:0:0/96","client_net":"10.130.0.0/16","plat_prefix":"fddd:1337:1338::2:0:0/96",
			"counters":{"out_4to6":10,"out_6to4":20,"drops":{"ttl_expired":2,"bad_checksum":0}}}`)},
		"prefixd": {"status": reply(`{"current":"fddd:1337:1338::2:0:0/96","route_source":"babel-socket",
			"candidates":[{"prefix":"fddd:1337:1338::2:0:0/96","metric":96,"probed":true,"probe_ok":true,"rtt_ns":200000},
			{"prefix":"fddd:1337:1338::1:0:0/96","metric":65535,"probed":true,"probe_ok":false}],
			"switches":[{"time":"t","from":"fddd:1337:1338::1:0:0/96","to":"fddd:1337:1338::2:0:0/96","reason":"current PLAT failed 3 probes in a row"}]}`)},
		"l3roamd": {"status": reply(`{"plat_roamed_clients":[]}`), "get_clients": reply(`[{"mac":"02:c1:1e:00:00:0a","ipv4":"10.130.0.140",
			"roamed_here":true,"clat_prefix_of_lease":"fddd:1337:1337::2:0:0/96","plat_of_sessions":"fddd:1337:1338::2:0:0/96"}]`)},
	} {
		srv, err := ctlsock.Listen(filepath.Join(dir, name+".sock"), cmds)
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
	}
	socks := map[string]string{}
	for _, d := range daemons {
		socks[d] = filepath.Join(dir, d+".sock")
	}
	n := Query(socks)
	var b bytes.Buffer
	Print(&b, n)
	out := b.String()
	for _, want := range []string{
		"role:        CLAT\n",
		"PLAT in use: fddd:1337:1338::2:0:0/96",
		"drops ttl_expired 2\n",
		"* fddd:1337:1338::2:0:0/96",
		"metric 65535  probe failing",
		"(current PLAT failed 3 probes in a row)",
		"1 clients (1 roamed here)",
		"02:c1:1e:00:00:0a 10.130.0.140 (lease from fddd:1337:1337::2:0:0/96",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "platd") {
		t.Errorf("a daemon that is not installed is reported:\n%s", out)
	}
	js, _ := json.Marshal(n)
	if !strings.Contains(string(js), `"platd":null`) || !strings.Contains(string(js), `"l3roamd_clients":[{`) || !strings.Contains(string(js), `"errors":{"platd"`) {
		t.Errorf("--json: %s", js)
	}
}

// TestSendPassesOneCommand: `xlatctl DAEMON COMMAND ARGS` sends the line
// and prints the reply; an error reply or a missing daemon exits 1.
func TestSendPassesOneCommand(t *testing.T) {
	path := filepath.Join(t.TempDir(), "platd.sock")
	s, err := ctlsock.Listen(path, map[string]ctlsock.Handler{
		"sessions": func(args []string) (any, error) { return "sessions of " + strings.Join(args, ","), nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var out, errOut bytes.Buffer
	if code := Send(&out, &errOut, path, []string{"sessions", "a", "b"}); code != 0 || out.String() != "sessions of a,b\n" {
		t.Errorf("exit %d, %q %q", code, out.String(), errOut.String())
	}
	out.Reset()
	if code := Send(&out, &errOut, path, []string{"flush"}); code != 1 || !strings.HasPrefix(out.String(), "error: unknown command") {
		t.Errorf("bad command: exit %d, %q", code, out.String())
	}
	errOut.Reset()
	if code := Send(&out, &errOut, filepath.Join(t.TempDir(), "none.sock"), []string{"status"}); code != 1 || errOut.Len() == 0 {
		t.Errorf("no daemon: exit %d, %q", code, errOut.String())
	}
}

package xlatctl

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gluon-464xlat/gluon-464xlat/internal/ctlsock"
	"github.com/gluon-464xlat/gluon-464xlat/internal/status"
	"github.com/gluon-464xlat/gluon-464xlat/siit"
)

// Daemons answering with canned replies of the status types (the real ones
// answer in TestDemo):
// the summary names the role, the chosen PLAT with its candidates, the
// roamed client and the missing daemon; --json carries all of it.
func TestNodeAtAGlance(t *testing.T) {
	dir := t.TempDir()
	reply := func(v any) ctlsock.Handler { return func([]string) (any, error) { return v, nil } }
	cur, other := netip.MustParsePrefix("fddd:1337:1338::2:0:0/96"), netip.MustParsePrefix("fddd:1337:1338::1:0:0/96")
	for name, cmds := range map[string]map[string]ctlsock.Handler{
		"clatd": {"status": reply(status.Clatd{CLATPrefix: "fddd:1337:1337::1:0:0/96", ClientNet: "10.130.0.0/16", PLATPrefix: cur.String(),
			Counters: status.Counters{Snapshot: siit.Snapshot{Out4to6: 10, Out6to4: 20, Drops: map[string]uint64{"ttl_expired": 2, "bad_checksum": 0}}}})},
		"prefixd": {"status": reply(status.Prefixd{Current: cur.String(), Source: "babel-socket",
			Candidates: []status.Candidate{{Prefix: cur, Metric: 96, Probed: true, ProbeOK: true, RTT: 200 * time.Microsecond},
				{Prefix: other, Metric: 65535, Probed: true}},
			Switches: []status.Switch{{Time: time.Now(), From: other.String(), To: cur.String(), Reason: "current PLAT failed 3 probes in a row"}}})},
		"l3roamd": {"status": reply(status.L3roamd{PLATRoamed: []status.Roam{}}), "get_clients": reply(status.Clients{Count: 1, List: map[string]status.Client{"02:c1:1e:00:00:0a": {IPv4: "10.130.0.140",
			Roamed: true, CLATD: "fddd:1337:1337::2:0:0/96", PLATC: cur.String()}}})},
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
	if !strings.Contains(string(js), `"platd":null`) || !strings.Contains(string(js), `"l3roamd_clients":{"clients":1`) || !strings.Contains(string(js), `"errors":{"platd"`) {
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

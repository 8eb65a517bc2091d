package e2e

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gluon-464xlat/gluon-464xlat/internal/netlab"
)

// TestConformanceCorpusThroughClatd replays the conformance corpus of the
// translator (siit/testdata/conformance, its "clat" configuration, which is
// this lab's clatd) through a running clatd, both ways: the client sends
// each IPv4 input as it is (raw socket) and the server captures what
// arrives, and the server sends each IPv6 input and the client captures.
// Each expected packet must arrive byte for byte (the Identification and
// header checksum of IPv4 aside), with three more hops on it: the node's
// kernel forwards the packet into the TUN and the translation out of it,
// and the router forwards it on. Cases the kernels would answer themselves
// (TTL or hop limit under 4), and those that expect nothing or an error
// back to the sender, are the library test's alone.
func TestConformanceCorpusThroughClatd(t *testing.T) {
	js, err := os.ReadFile("../siit/testdata/conformance/cases.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		Name, RFC, Config, In string
		Out                   []string
	}
	if err := json.Unmarshal(js, &cases); err != nil {
		t.Fatal(err)
	}
	client4 := []byte{10, 130, 0, 10}
	server6, _ := hex.DecodeString("fddd1337133812345678" + "9abcc6336401")
	l := newCLATLab(t)
	for _, dir := range []struct {
		v4                    bool // IPv4 in
		from, to, toDev, name string
	}{{true, l.client, l.server, "s0", "4->6"}, {false, l.server, l.client, "c0", "6->4"}} {
		var in, want [][]byte
		var names []string
		for _, c := range cases {
			i, _ := hex.DecodeString(c.In)
			if c.Config != "clat" || len(c.Out) != 1 || len(i) < 40 {
				continue
			}
			o, _ := hex.DecodeString(c.Out[0])
			if dir.v4 && (i[0]>>4 != 4 || i[8] < 4 || !bytes.Equal(i[12:16], client4) || o[0]>>4 != 6) ||
				!dir.v4 && (i[0]>>4 != 6 || i[7] < 4 || !bytes.Equal(i[8:24], server6) || o[0]>>4 != 4) {
				continue
			}
			if dir.v4 {
				o[7] -= 3
			} else {
				o[8] -= 3
			}
			in, want, names = append(in, i), append(want, normalize4(o)), append(names, c.Name+" ("+c.RFC+")")
		}
		if len(in) < 30 {
			t.Fatalf("%s: only %d corpus cases for clatd", dir.name, len(in))
		}
		capFile, sendFile := filepath.Join(l.Dir, "captured"+dir.toDev), filepath.Join(l.Dir, "sent"+dir.toDev)
		if err := netlab.WritePackets(sendFile, in); err != nil {
			t.Fatal(err)
		}
		family := map[bool]string{true: "6", false: "4"}
		capture := l.Start(dir.to, "capture", netlab.Helper("raw-capture", family[dir.v4], dir.toDev, "4", capFile)...)
		if !netlab.WaitFor(5*time.Second, func() bool { return strings.Contains(capture.Log(), "ready") }) {
			t.Fatalf("capture did not start: %s", capture.Log())
		}
		l.Must(dir.from, netlab.Helper("raw-send", family[!dir.v4], sendFile)...)
		if !netlab.WaitFor(10*time.Second, capture.Exited) {
			t.Fatal("capture did not end")
		}
		got, _ := netlab.ReadPackets(capFile)
		missing := 0
		for k, w := range want {
			found := false
			for _, g := range got {
				if bytes.Equal(normalize4(g), w) {
					found = true
					break
				}
			}
			if !found {
				missing++
				t.Errorf("%s %s: not arrived as expected\nwant % x", dir.name, names[k], w)
			}
		}
		t.Logf("%s: %d of %d corpus cases arrived through clatd as expected", dir.name, len(want)-missing, len(want))
	}
}

// normalize4 zeroes an IPv4 header's Identification and checksum (the
// translator chooses the one, the routers' TTL decrements change the other).
func normalize4(b []byte) []byte {
	b = append([]byte(nil), b...)
	if len(b) >= 20 && b[0]>>4 == 4 {
		b[4], b[5], b[10], b[11] = 0, 0, 0, 0
	}
	return b
}

package e2e

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gluon-464xlat/gluon-464xlat/header"
	"github.com/gluon-464xlat/gluon-464xlat/internal/netlab"
)

// corpus reads the kept fuzz corpus of one target.
func corpus(t *testing.T, target string) [][]byte {
	files, _ := filepath.Glob(filepath.Join("..", "siit", "testdata", "fuzz", target, "*"))
	var res [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "[]byte(") {
				if s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(line, "[]byte("), ")")); err == nil {
					res = append(res, []byte(s))
				}
			}
		}
	}
	if len(res) < 10 {
		t.Fatalf("fuzz corpus of %s has %d entries", target, len(res))
	}
	return res
}

// Hostile packets sent through the real kernel into the real clatd: the
// fuzz corpus and hand-written malformed packets, made routable (addresses
// and lengths the kernel forwards) but hostile in everything the kernel
// passes on. clatd must survive, count drops, and keep translating.
func TestCLATSurvivesHostilePackets(t *testing.T) {
	l := newCLATLab(t)
	before := totalDrops(l.status(t))

	var six [][]byte
	for _, p := range corpus(t, "FuzzTranslate6to4") {
		if len(p) < 40 {
			p = append(p, make([]byte, 40-len(p))...)
		}
		p = append([]byte(nil), p...)
		p[0] = 0x60 | p[0]&0x0f
		binary.BigEndian.PutUint16(p[4:], uint16(len(p)-40))
		if p[7] < 8 {
			p[7] = 8
		}
		copy(p[8:24], mustIP6(serverPLAT))
		copy(p[24:36], mustIP6(clientCLAT)[:12]) // any address in the CLAT /96
		six = append(six, p)
	}
	// Hand-written: ICMPv6 errors whose quoted packet is cut or bogus,
	// a fragmented ICMPv6 echo, a Routing header with segments left.
	six = append(six,
		v6(58, []byte{1, 4, 0, 0, 0, 0, 0, 0, 0x60, 0}),
		v6(58, append([]byte{2, 0, 0, 0, 0, 0, 5, 0}, make([]byte, 40)...)),
		v6(44, []byte{58, 0, 0, 1, 0, 0, 0, 7, 128, 0, 0, 0, 0, 1, 0, 1}),
		v6(43, []byte{17, 0, 0, 2, 0, 0, 0, 0, 0, 1, 0, 2, 0, 8, 0, 0}),
	)
	var four [][]byte
	for _, p := range corpus(t, "FuzzTranslate4to6") {
		if len(p) < 20 {
			p = append(p, make([]byte, 20-len(p))...)
		}
		p = append([]byte(nil), p...)
		p[0] = 0x45 // the kernel checks IHL; the options would be checked too
		h := header.IPv4(p)
		h.SetTotalLen(len(p))
		h.SetFlagsOffset(false, false, 0)
		if h.TTL() < 8 {
			h.SetTTL(8)
		}
		copy(h.Src(), []byte{10, 130, 0, 10})
		copy(h.Dst(), []byte{198, 51, 100, 1})
		h.SetChecksum()
		four = append(four, p)
	}
	f6, f4 := filepath.Join(l.Dir, "hostile6"), filepath.Join(l.Dir, "hostile4")
	if err := netlab.WritePackets(f6, six); err != nil {
		t.Fatal(err)
	}
	if err := netlab.WritePackets(f4, four); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", l.Must(l.server, netlab.Helper("raw-send", "6", f6)...))
	t.Logf("%s", l.Must(l.client, netlab.Helper("raw-send", "4", f4)...))

	if l.clatd.Exited() {
		t.Fatalf("clatd died:\n%s", l.clatd.Log())
	}
	after := totalDrops(l.status(t))
	if after <= before {
		t.Errorf("drop counters did not move (%v -> %v)", before, after)
	}
	t.Logf("drops %v -> %v", before, after)
	out := l.Must(l.client, "ping", "-c", "2", "-i", "0.2", "-W", "2", server4)
	if !strings.Contains(out, " 0% packet loss") {
		t.Fatalf("clatd stopped translating after hostile input:\n%s", out)
	}
}

func totalDrops(st map[string]any) float64 {
	var n float64
	for _, v := range st["counters"].(map[string]any)["drops"].(map[string]any) {
		n += v.(float64)
	}
	return n
}

func mustIP6(s string) []byte {
	a := make([]byte, 16)
	ip := netipMust(s)
	copy(a, ip[:])
	return a
}

// v6 builds an IPv6 packet from the server to the client's CLAT address.
func v6(next uint8, payload []byte) []byte {
	p := make([]byte, 40+len(payload))
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], uint16(len(payload)))
	p[6], p[7] = next, 64
	copy(p[8:24], mustIP6(serverPLAT))
	copy(p[24:40], mustIP6(clientCLAT))
	copy(p[40:], payload)
	return p
}

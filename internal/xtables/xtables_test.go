package xtables

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/gluon-464xlat/gluon-464xlat/internal/netlab"
)

// The restore script declares every chain before any rule (a rule may jump
// to a later chain), hooks a chain only where no jump exists yet, and
// refuses arguments iptables-restore would split or unquote.
func TestWriteScript(t *testing.T) {
	have := parseSave([]byte("*filter\n:FORWARD ACCEPT [0:0]\n:A - [0:0]\n[3:180] -A FORWARD -j A\n[1:60] -A A -j DROP\nCOMMIT\n"))
	got, err := writeScript([]Chain{
		{Table: "filter", Name: "A", Hook: "FORWARD", Rules: [][]string{{"-i", "x", "-j", "B"}}},
		{Table: "filter", Name: "B", Rules: [][]string{{"-j", "DROP"}}},
		{Table: "nat", Name: "C", Hook: "POSTROUTING", Rules: [][]string{{"-j", "MASQUERADE"}}},
	}, have)
	if err != nil {
		t.Fatal(err)
	}
	want := "*filter\n:A - [0:0]\n:B - [0:0]\n-A A -i x -j B\n-A B -j DROP\nCOMMIT\n*nat\n:C - [0:0]\n-A C -j MASQUERADE\n-I POSTROUTING 1 -j C\nCOMMIT\n"
	if got != want {
		t.Errorf("script:\n%s\nwant:\n%s", got, want)
	}
	if _, err := writeScript([]Chain{{Table: "filter", Name: "A", Rules: [][]string{{"--comment", "two words"}}}}, nil); err == nil {
		t.Error("an argument with a space accepted")
	}
}

// Against the real iptables-legacy in a network namespace of its own: a
// write replaces a chain's rules and hooks it once however often it runs,
// counters are read per rule, remove leaves nothing, twice.
func TestWriteAndRemoveWithIPTablesLegacy(t *testing.T) {
	if _, err := exec.LookPath("iptables-legacy-restore"); err != nil {
		t.Skip("no iptables-legacy-restore")
	}
	netlab.InPrivateNetns(t, func() {
		f := New("iptables-legacy")
		chains := []Chain{
			{Table: "filter", Name: "T_FWD", Hook: "FORWARD", Rules: [][]string{{"-s", "10.0.0.1", "-j", "T_FULL"}, {"-j", "DROP"}}},
			{Table: "filter", Name: "T_FULL"},
			{Table: "nat", Name: "T_NAT", Hook: "POSTROUTING", Rules: [][]string{{"-s", "10.0.0.1", "-j", "MASQUERADE"}}},
		}
		for i := 0; i < 2; i++ {
			if err := f.Write(chains...); err != nil {
				t.Errorf("write %d: %v", i, err)
				return
			}
		}
		have, err := f.read("")
		if err != nil {
			t.Error(err)
			return
		}
		if n := have.jumps("filter", "FORWARD", "T_FWD"); n != 1 {
			t.Errorf("%d jumps to T_FWD after two writes", n)
		}
		if n := have.jumps("nat", "POSTROUTING", "T_NAT"); n != 1 {
			t.Errorf("%d jumps to T_NAT after two writes", n)
		}
		if p, err := f.Packets("filter", "T_FWD"); err != nil || !slices.Equal(p, []uint64{0, 0}) {
			t.Errorf("packets %v %v", p, err)
		}
		chains[0].Rules = chains[0].Rules[1:]
		if err := f.Write(chains[:1]...); err != nil {
			t.Error(err)
		}
		if p, _ := f.Packets("filter", "T_FWD"); len(p) != 1 {
			t.Errorf("rewritten chain has %d rules", len(p))
		}
		for i := 0; i < 2; i++ {
			if err := f.Remove(chains...); err != nil {
				t.Errorf("remove %d: %v", i, err)
			}
		}
		out, _ := exec.Command("iptables-legacy-save").Output()
		if strings.Contains(string(out), "T_") {
			t.Errorf("left behind:\n%s", out)
		}
	})
}

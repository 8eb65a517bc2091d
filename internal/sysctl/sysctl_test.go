package sysctl

import "testing"

func TestIntReadsANumberAndSaysWhenItCannot(t *testing.T) {
	if n := Int("kernel/pid_max"); n <= 0 {
		t.Errorf("kernel/pid_max = %d", n)
	}
	for _, name := range []string{"no/such/setting", "kernel/ostype"} { // absent, not a number
		if n := Int(name); n != -1 {
			t.Errorf("%s = %d, want -1", name, n)
		}
	}
}

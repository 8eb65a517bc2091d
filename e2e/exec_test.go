package e2e

import (
	"errors"
	"net/netip"
	"os/exec"
)

// runExit runs a program and returns its combined output and exit code.
func runExit(name string, args ...string) (string, int) {
	out, err := exec.Command(name, args...).CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		return err.Error(), -1
	}
	return string(out), 0
}

func netipMust(s string) [16]byte { return netip.MustParseAddr(s).As16() }

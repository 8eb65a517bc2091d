// Package sysctl reads the kernel's numeric settings and counters under
// /proc/sys, for the daemons that size their work by them (platd's
// conntrack gate, l3roamd's conntrack cleaning).
package sysctl

import (
	"os"
	"strconv"
	"strings"
)

// Int is /proc/sys/name as a number, or -1 when it cannot be read.
func Int(name string) int {
	b, err := os.ReadFile("/proc/sys/" + name)
	if err != nil {
		return -1
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return -1
	}
	return n
}

// ConntrackCount is the number of entries in the kernel's connection
// table (-1: no conntrack).
func ConntrackCount() int { return Int("net/netfilter/nf_conntrack_count") }

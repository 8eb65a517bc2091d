// Package e2e runs the daemons for real in network namespaces: real TUN
// devices, real kernel forwarding, real TCP/UDP/ICMP through the whole path.
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/gluon-464xlat/gluon-464xlat/internal/netlab"
)

var binDir string

func TestMain(m *testing.M) {
	netlab.HelperMain()
	if os.Geteuid() != 0 {
		fmt.Println("e2e: not root, skipping end-to-end tests")
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "xlat-e2e-bin")
	if err != nil {
		panic(err)
	}
	binDir = dir
	// What ships: the one multi-call binary, each daemon a symlink to it.
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "gluon-464xlat"), "../cmd/gluon-464xlat")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Println("e2e: build gluon-464xlat", err)
		os.Exit(1)
	}
	for _, d := range []string{"clatd", "platd", "prefixd", "l3roamd", "xlatctl"} {
		if err := os.Symlink("gluon-464xlat", filepath.Join(dir, d)); err != nil {
			fmt.Println("e2e:", err)
			os.Exit(1)
		}
	}
	if err := fastPathFlag(dir); err != nil {
		fmt.Println("e2e:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func bin(name string) string { return filepath.Join(binDir, name) }

// fastPath is XLAT_FASTPATH (off, on; empty: the daemons' default, auto):
// make test runs the CLAT's and the PLAT's tests a second time with the
// fast path off. Every clatd and platd the tests start (outside Gluon
// nodes) then gets -fastpath first, through a script in the symlink's
// place that runs the daemon under its own name.
var fastPath = os.Getenv("XLAT_FASTPATH")

func fastPathFlag(dir string) error {
	if fastPath == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Join(dir, "real"), 0o755); err != nil {
		return err
	}
	for _, d := range []string{"clatd", "platd"} {
		if err := os.Symlink("../gluon-464xlat", filepath.Join(dir, "real", d)); err != nil {
			return err
		}
		os.Remove(filepath.Join(dir, d))
		script := fmt.Sprintf("#!/bin/sh\nexec %s -fastpath %s \"$@\"\n", filepath.Join(dir, "real", d), fastPath)
		if err := os.WriteFile(filepath.Join(dir, d), []byte(script), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// fastPathAsAsked checks a daemon's status after traffic: with the default
// (auto) the fast path runs on this kernel and took the ping, the
// downloads' data and the UDP echo both ways; with XLAT_FASTPATH=off not.
func fastPathAsAsked(t *testing.T, st map[string]any) {
	t.Helper()
	fp, _ := st["fastpath_counters"].(map[string]any)
	if fastPath == "off" {
		if st["fastpath"] != "off" || fp != nil {
			t.Errorf("-fastpath off: %v %v", st["fastpath"], fp)
		}
		return
	}
	if st["fastpath"] != "on" || fp == nil {
		t.Fatalf("the fast path does not run: %v (%v)", st["fastpath"], st["fastpath_reason"])
	}
	if fp["fast_4to6"].(float64) < 100 || fp["fast_6to4"].(float64) < 100 {
		t.Errorf("fast path counters: %v", fp)
	}
}

// floodWhileStopped runs each `ip -batch` script in ns while p is stopped,
// as a busy router's daemon falls behind: its netlink socket overflows for
// certain. p runs again afterwards, also when a script fails.
func floodWhileStopped(l *netlab.Lab, ns string, p *netlab.Proc, batches ...string) {
	p.Signal(syscall.SIGSTOP)
	defer p.Signal(syscall.SIGCONT)
	for _, b := range batches {
		f := filepath.Join(l.Dir, "batch")
		os.WriteFile(f, []byte(b), 0o644)
		l.Must(ns, "ip", "-batch", f)
	}
}

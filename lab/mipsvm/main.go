// Command mipsvm is PID 1 of the small MIPS machine make bench-mips boots
// under qemu (lab/bench-mips.sh): it runs the fast path's program in the
// kernel with the eBPF JIT and with the interpreter (what OpenWrt 23.05's
// Linux 5.15 has on 32-bit MIPS), a packet's round trip through a TUN and
// the TUN path's translation, and powers the machine off. With TESTS set
// (the kernel's command line) it also runs the fast path's tests that
// match it, the program's output checked against the TUN path's, in
// this MIPS kernel.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	for _, m := range []struct{ fs, dir string }{{"proc", "/proc"}, {"sysfs", "/sys"}, {"devtmpfs", "/dev"}, {"tmpfs", "/tmp"}} {
		os.MkdirAll(m.dir, 0o755)
		if err := unix.Mount(m.fs, m.dir, m.fs, 0, ""); err != nil {
			fmt.Println("mipsvm: mount", m.dir, err)
		}
	}
	if f, err := os.Open("/tun.ko"); err == nil {
		if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil {
			fmt.Println("mipsvm: tun.ko:", err)
		}
		f.Close()
	}
	var uts unix.Utsname
	unix.Uname(&uts)
	fmt.Printf("mipsvm: Linux %s %s\n", unix.ByteSliceToString(uts.Release[:]), unix.ByteSliceToString(uts.Machine[:]))
	run := func(tag string, args ...string) {
		start := time.Now()
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = []string{"PATH=/", "HOME=/tmp", "TMPDIR=/tmp"}
		out, err := cmd.CombinedOutput()
		for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
			fmt.Printf("%s %s\n", tag, line)
		}
		fmt.Printf("%s done in %s err=%v\n", tag, time.Since(start).Round(time.Millisecond), err)
	}
	n := os.Getenv("BENCH_N") // from the kernel's command line
	if n == "" {
		n = "2000"
	}
	tests := os.Getenv("TESTS") // also the fast path's tests matching this, both ways
	for _, jit := range []string{"1", "0"} {
		if err := os.WriteFile("/proc/sys/net/core/bpf_jit_enable", []byte(jit), 0); err != nil {
			fmt.Println("mipsvm: bpf_jit_enable:", err)
		}
		if tests != "" {
			run("test jit="+jit, "/fastpath.test", "-test.run", tests)
		}
		run("jit="+jit, "/fastpath.test", "-test.run", "^$", "-test.bench", "BenchmarkInKernel", "-test.benchtime", n+"x")
	}
	run("tun", "/tun.test", "-test.run", "^$", "-test.bench", "BenchmarkRoundTrip", "-test.benchtime", n+"x")
	run("siit", "/siit.test", "-test.run", "^$", "-test.bench", "UDPSmall", "-test.benchtime", "20000x")
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}

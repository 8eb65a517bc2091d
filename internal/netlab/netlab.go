// Package netlab builds test networks out of Linux network namespaces and
// veth pairs and runs real programs in them. Everything it creates is torn
// down in t.Cleanup, also when the test fails.
package netlab

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

var seq atomic.Int32

// Lab is one test's set of namespaces and processes.
type Lab struct {
	t      testing.TB
	prefix string
	nss    []string
	procs  []*Proc
	Dir    string
}

// New makes a lab whose namespace names carry a prefix unique to this process.
func New(t testing.TB) *Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	sweepOnce.Do(sweepStale)
	l := &Lab{t: t, prefix: fmt.Sprintf("xl%d%d", os.Getpid()%100000, seq.Add(1)), Dir: t.TempDir()}
	t.Cleanup(l.Close)
	return l
}

// registry lists, per test process, the namespaces it made: t.Cleanup does
// not run when a test binary dies (go test's -timeout panics, a kill), and
// what such a process left behind is removed by the next one (sweepStale).
var (
	registry  = filepath.Join(os.TempDir(), "netlab-namespaces")
	regMu     sync.Mutex
	sweepOnce sync.Once
)

// register notes a namespace of this process.
func register(ns string) {
	regMu.Lock()
	defer regMu.Unlock()
	os.MkdirAll(registry, 0o700)
	f, err := os.OpenFile(filepath.Join(registry, strconv.Itoa(os.Getpid())), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return
	}
	fmt.Fprintln(f, ns)
	f.Close()
}

// sweepStale removes the namespaces (and kills what runs in them) of test
// processes that are gone.
func sweepStale() {
	ents, _ := os.ReadDir(registry)
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue // alive (or not ours to judge)
		}
		b, _ := os.ReadFile(filepath.Join(registry, e.Name()))
		for _, ns := range strings.Fields(string(b)) {
			if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil {
				for _, p := range strings.Fields(string(out)) {
					if n, err := strconv.Atoi(p); err == nil {
						syscall.Kill(n, syscall.SIGKILL)
					}
				}
				exec.Command("ip", "netns", "del", ns).Run()
			}
		}
		os.Remove(filepath.Join(registry, e.Name()))
	}
}

// NS creates a namespace (name is short: it prefixes interface-free names
// only) with loopback up and returns its full name.
func (l *Lab) NS(name string) string {
	full := l.prefix + "-" + name
	register(full)
	l.must("ip", "netns", "add", full)
	l.nss = append(l.nss, full)
	l.Must(full, "ip", "link", "set", "lo", "up")
	// No duplicate address detection on fresh veths: it holds packets ~2 s.
	l.Must(full, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
	return full
}

// Link connects namespace a (interface ai) and b (interface bi) with a veth pair.
func (l *Lab) Link(a, ai, b, bi string) {
	tmp := fmt.Sprintf("v%s%d", l.prefix[2:], seq.Add(1))
	l.must("ip", "link", "add", tmp+"a", "netns", a, "type", "veth", "peer", "name", tmp+"b", "netns", b)
	l.Must(a, "ip", "link", "set", tmp+"a", "name", ai)
	l.Must(b, "ip", "link", "set", tmp+"b", "name", bi)
	l.Must(a, "ip", "link", "set", ai, "up")
	l.Must(b, "ip", "link", "set", bi, "up")
}

// Forwarding turns on IPv4 and IPv6 forwarding in ns.
func (l *Lab) Forwarding(ns string) {
	l.Must(ns, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
}

// Run runs a command in ns and returns its combined output.
func (l *Lab) Run(ns string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// T returns a view of the lab whose Must fails t (a subtest) instead of
// the test that made the lab.
func (l *Lab) T(t testing.TB) *Lab {
	c := *l
	c.t = t
	return &c
}

// Must is Run that fails the test on error.
func (l *Lab) Must(ns string, args ...string) string {
	l.t.Helper()
	out, err := l.Run(ns, args...)
	if err != nil {
		l.t.Fatalf("%s: %s: %v\n%s", ns, strings.Join(args, " "), err, out)
	}
	return out
}

func (l *Lab) must(args ...string) {
	l.t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		l.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// Proc is a background process in a namespace.
type Proc struct {
	Name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// Start runs a long-lived program in ns; its output goes to a log file that
// Log returns. It is killed at cleanup if still running.
func (l *Lab) Start(ns, name string, args ...string) *Proc {
	l.t.Helper()
	logf := filepath.Join(l.Dir, fmt.Sprintf("%s-%d.log", name, seq.Add(1)))
	f, err := os.Create(logf)
	if err != nil {
		l.t.Fatal(err)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		l.t.Fatalf("start %s: %v", name, err)
	}
	p := &Proc{Name: name, cmd: cmd, log: logf, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); f.Close(); close(p.done) }()
	l.procs = append(l.procs, p)
	return p
}

// StartServer starts a traffic helper that serves (tcp-serve, udp-echo)
// and returns once it says it is listening.
func (l *Lab) StartServer(ns, name string, args ...string) *Proc {
	l.t.Helper()
	p := l.Start(ns, name, args...)
	if !WaitFor(10*time.Second, func() bool { return strings.Contains(p.Log(), "listening") }) {
		l.t.Fatalf("%s did not start listening: %s", name, p.Log())
	}
	return p
}

// Log returns what the process printed so far.
func (p *Proc) Log() string { b, _ := os.ReadFile(p.log); return string(b) }

// Signal sends sig to the process group.
func (p *Proc) Signal(sig syscall.Signal) { syscall.Kill(-p.cmd.Process.Pid, sig) }

// Stop sends SIGTERM and waits up to 10 s, then kills; it returns the exit error.
func (p *Proc) Stop() error {
	p.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.Signal(syscall.SIGKILL)
		<-p.done
	}
	return p.err
}

// Pid is the process's PID (`ip netns exec` execs the program).
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// ExitCode is the exit status of an ended process (-1 while it runs or
// when a signal ended it).
func (p *Proc) ExitCode() int {
	if !p.Exited() {
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Close stops every process and deletes every namespace (and with them
// their veths). Safe to call twice.
func (l *Lab) Close() {
	for _, p := range l.procs {
		if !p.Exited() {
			p.Signal(syscall.SIGKILL)
			<-p.done
		}
		if l.t.Failed() {
			l.t.Logf("--- log of %s:\n%s", p.Name, tail(p.Log(), 3000))
		}
	}
	l.procs = nil
	for _, ns := range l.nss {
		exec.Command("ip", "netns", "del", ns).Run()
	}
	l.nss = nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// WaitFor polls cond every 50 ms until it holds or timeout passes.
func WaitFor(timeout time.Duration, cond func() bool) bool {
	end := time.Now().Add(timeout)
	for time.Now().Before(end) {
		if cond() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cond()
}

// Contains reports whether out has every word in want.
func Contains(out string, want ...string) bool {
	for _, w := range want {
		if !bytes.Contains([]byte(out), []byte(w)) {
			return false
		}
	}
	return true
}

// RSS is the process's resident memory in KiB (0 when it is gone). `ip
// netns exec` execs the program, so the PID is the program's.
func (p *Proc) RSS() int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kib int
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kib)
			return kib
		}
	}
	return 0
}

// PortMove moves an interface from one namespace to another and makes it
// an up port of a bridge there, by netlink from this process: two `ip`
// commands take 20-50 ms between the port leaving and arriving, which a
// roaming benchmark would count as the daemons' time. Open it first, then
// Move.
type PortMove struct {
	from, to     *netlink.Handle
	toNS         netns.NsHandle
	port, bridge string
}

// PreparePortMove opens netlink handles in both namespaces.
func (l *Lab) PreparePortMove(from, to, port, bridge string) (*PortMove, error) {
	src, err := netns.GetFromName(from)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	dst, err := netns.GetFromName(to)
	if err != nil {
		return nil, err
	}
	hs, err := netlink.NewHandleAt(src)
	if err != nil {
		dst.Close()
		return nil, err
	}
	hd, err := netlink.NewHandleAt(dst)
	if err != nil {
		hs.Close()
		dst.Close()
		return nil, err
	}
	return &PortMove{from: hs, to: hd, toNS: dst, port: port, bridge: bridge}, nil
}

// Move does it and reports when the port left and when it was up on the
// bridge; it closes the handles.
func (m *PortMove) Move() (left, arrived time.Time, err error) {
	defer m.from.Close()
	defer m.to.Close()
	defer m.toNS.Close()
	link, err := m.from.LinkByName(m.port)
	if err != nil {
		return left, arrived, err
	}
	left = time.Now()
	if err := m.from.LinkSetNsFd(link, int(m.toNS)); err != nil {
		return left, arrived, err
	}
	if link, err = m.to.LinkByName(m.port); err != nil {
		return left, arrived, err
	}
	br, err := m.to.LinkByName(m.bridge)
	if err != nil {
		return left, arrived, err
	}
	if err := m.to.LinkSetMaster(link, br); err != nil {
		return left, arrived, err
	}
	err = m.to.LinkSetUp(link)
	return left, time.Now(), err
}

// Package cli is what the daemons share on their command line: -help,
// -version and -log-level with slog set-up, the rule that a bad flag is one
// line on stderr and exit status 2, waiting for the stop signal, and the
// flags of a translating TUN (clatd, platd).
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/gluon-464xlat/gluon-464xlat/internal/xlatd"
)

// Version is the build's version, set by the linker:
// -X github.com/gluon-464xlat/gluon-464xlat/internal/cli.Version=v1.2.3
var Version = "dev"

// Level is the log level in force; a daemon may change it at run time
// (l3roamd's verbosity command).
var Level slog.LevelVar

// Common holds the flags every daemon has.
type Common struct {
	logLevel string
	syslog   bool
	version  bool
}

// NewFlagSet returns a flag set that reports errors instead of printing
// them, with -log-level and -version registered.
func NewFlagSet(name string, c *Common) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&c.syslog, "syslog", false, "log to syslog (facility daemon) at each line's priority, instead of stderr")
	fs.BoolVar(&c.version, "version", false, "print the version and exit")
	return fs
}

// Parse parses args. -help prints usage and -version the version, both
// exiting 0; a bad flag or value is returned for Fail. It sets up slog.
func Parse(fs *flag.FlagSet, c *Common, args []string, usage string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stdout)
			fmt.Println("usage:", usage)
			fs.PrintDefaults()
			os.Exit(0)
		}
		return err
	}
	if c.version {
		fmt.Println(fs.Name(), Version)
		os.Exit(0)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.logLevel)); err != nil {
		return fmt.Errorf("-log-level %q: %v", c.logLevel, err)
	}
	// Plain key=value lines, to syslog at their priority (-syslog, what the
	// init scripts ask for) or on stderr.
	Level.Set(lvl)
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: &Level})))
	if c.syslog {
		w, err := dialSyslog("/dev/log", fs.Name())
		if err != nil {
			slog.Warn("no syslog: logging to stderr", "err", err)
			return nil
		}
		slog.SetDefault(slog.New(newSyslogHandler(w, &Level)))
	}
	return nil
}

// TUN holds the flags of a translating TUN.
type TUN struct {
	Common
	Dev       string
	MTU       int
	Queues    int
	PinCPUs   bool
	NoOffload bool
	Socket    string
}

// NewTUNFlagSet is NewFlagSet with the TUN flags (defaults: device dev,
// socket path sock).
func NewTUNFlagSet(name, dev, sock, mtuHelp string, t *TUN) *flag.FlagSet {
	fs := NewFlagSet(name, &t.Common)
	fs.StringVar(&t.Dev, "dev", dev, "TUN device name")
	fs.IntVar(&t.MTU, "mtu", 1500, mtuHelp)
	fs.IntVar(&t.Queues, "queues", runtime.NumCPU(), "TUN queues (one translating goroutine each)")
	fs.BoolVar(&t.PinCPUs, "pin-cpus", runtime.NumCPU() > 1, "pin each queue's thread to one CPU")
	fs.BoolVar(&t.NoOffload, "no-offload", false, "disable TUN offload (GSO/checksum)")
	fs.StringVar(&t.Socket, "socket", sock, "control socket path")
	return fs
}

// ParseTUN is Parse plus the checks of the TUN flags.
func ParseTUN(fs *flag.FlagSet, t *TUN, args []string, usage string) error {
	if err := Parse(fs, &t.Common, args, usage); err != nil {
		return err
	}
	if t.MTU < 1280 || t.MTU > 65535 {
		return fmt.Errorf("-mtu %d: must be 1280..65535", t.MTU)
	}
	if t.Queues < 1 || t.Queues > 64 {
		return fmt.Errorf("-queues %d: must be 1..64", t.Queues)
	}
	return nil
}

// Options is the engine configuration the flags describe.
func (t *TUN) Options() xlatd.Options {
	return xlatd.Options{Dev: t.Dev, Queues: t.Queues, MTU: t.MTU, Offload: !t.NoOffload, PinCPUs: t.PinCPUs}
}

// Fail reports a bad flag or value: one line, exit status 2.
func Fail(name string, err error) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
	os.Exit(2)
}

// WarnForwarding logs when the kernel does not forward, which the
// translators need in both families.
func WarnForwarding(consequence string) {
	for _, f := range []string{"/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"} {
		if b, err := os.ReadFile(f); err == nil && len(b) > 0 && b[0] == '0' {
			slog.Warn("forwarding is off; "+consequence, "sysctl", f)
		}
	}
}

// WaitForStop blocks until SIGINT or SIGTERM.
func WaitForStop() os.Signal {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	return <-sig
}

// RunTUNDaemon waits until SIGINT or SIGTERM, or until the daemon's TUN
// device is gone (someone deleted it), and stops the daemon (name) with
// stop. It exits non-zero when the device went away or stop failed: procd
// then starts the daemon, and with it the device, again.
func RunTUNDaemon(name, dev string, gone <-chan struct{}, stop func() error) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case s := <-sig:
		slog.Info(name+" stopping", "signal", s.String())
	case <-gone:
		slog.Error(name+" stopping: its TUN device is gone", "dev", dev)
		stop()
		os.Exit(1)
	}
	if err := stop(); err != nil {
		slog.Error(name+" stop", "err", err)
		os.Exit(1)
	}
}

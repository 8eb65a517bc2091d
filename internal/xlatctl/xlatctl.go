// Package xlatctl is the operator's view of a node: what each daemon of
// the suite says on its control socket, at a glance or as one JSON object
// (--json) for scripts and Gluon's respondd.
package xlatctl

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gluon-464xlat/gluon-464xlat/internal/ctlsock"
	"github.com/gluon-464xlat/gluon-464xlat/internal/status"
)

// daemons in the order they are shown.
var daemons = []string{"clatd", "prefixd", "l3roamd", "platd"}

// Node is everything the daemons of one node report; a daemon that does not
// answer is absent (nil), with its error in Errors.
type Node struct {
	Clatd   *status.Clatd     `json:"clatd"`
	Prefixd *status.Prefixd   `json:"prefixd"`
	L3roamd *status.L3roamd   `json:"l3roamd"`
	Clients *status.Clients   `json:"l3roamd_clients"`
	Platd   *status.Platd     `json:"platd"`
	Errors  map[string]string `json:"errors,omitempty"`
}

// Query asks every daemon at its socket in socks (daemon name -> path).
func Query(socks map[string]string) *Node {
	n := &Node{Errors: map[string]string{}}
	get := func(d, cmd string, into any) bool {
		out, err := ctlsock.Query(socks[d], cmd)
		if err == nil && strings.HasPrefix(out, "error") {
			err = fmt.Errorf("%s", out)
		}
		if err == nil {
			err = json.Unmarshal([]byte(out), into)
		}
		if err != nil {
			if _, seen := n.Errors[d]; !seen {
				n.Errors[d] = err.Error()
			}
			return false
		}
		return true
	}
	n.Clatd = answer[status.Clatd](get, "clatd", "status")
	n.Prefixd = answer[status.Prefixd](get, "prefixd", "status")
	if n.L3roamd = answer[status.L3roamd](get, "l3roamd", "status"); n.L3roamd != nil {
		n.Clients = answer[status.Clients](get, "l3roamd", "get_clients")
	}
	n.Platd = answer[status.Platd](get, "platd", "status")
	if len(n.Errors) == 0 {
		n.Errors = nil
	}
	return n
}

// answer is daemon d's reply to cmd as a T, nil when it does not answer.
func answer[T any](get func(d, cmd string, into any) bool, d, cmd string) *T {
	var v T
	if !get(d, cmd, &v) {
		return nil
	}
	return &v
}

// Main runs xlatctl with args (without the program name).
func Main(args []string) {
	fs := flag.NewFlagSet("xlatctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	asJSON := fs.Bool("json", false, "print one JSON object")
	dir := fs.String("run-dir", "/var/run", "directory of the daemons' sockets (<daemon>.sock)")
	socks := map[string]*string{}
	for _, d := range daemons {
		socks[d] = fs.String(d+"-socket", "", d+"'s socket (default: RUN-DIR/"+d+".sock)")
	}
	err := fs.Parse(args)
	if err == nil && fs.NArg() > 0 && !slices.Contains(daemons, fs.Arg(0)) {
		err = fmt.Errorf("unknown daemon %q (one of %s)", fs.Arg(0), strings.Join(daemons, ", "))
	}
	if err == nil && fs.NArg() == 1 {
		err = fmt.Errorf("no command for %s (try: xlatctl %s help)", fs.Arg(0), fs.Arg(0))
	}
	if err != nil {
		if err == flag.ErrHelp {
			fmt.Println("usage: xlatctl [--json] [-run-dir DIR] [-<daemon>-socket PATH] [DAEMON COMMAND [ARG...]]")
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "xlatctl:", err)
		os.Exit(2)
	}
	paths := map[string]string{}
	for _, d := range daemons {
		paths[d] = *socks[d]
		if paths[d] == "" {
			paths[d] = filepath.Join(*dir, d+".sock")
		}
	}
	if fs.NArg() > 0 {
		os.Exit(Send(os.Stdout, os.Stderr, paths[fs.Arg(0)], fs.Args()[1:]))
	}
	n := Query(paths)
	if *asJSON {
		json.NewEncoder(os.Stdout).Encode(n)
	} else {
		Print(os.Stdout, n)
	}
	if n.Clatd == nil && n.Platd == nil && n.Prefixd == nil && n.L3roamd == nil {
		os.Exit(1) // nothing runs here
	}
}

// Send sends one command line to the daemon socket at path and prints its
// reply as it is (what `nc -U` does, which BusyBox lacks); it returns the
// exit code: 1 when the daemon is not there or answers an error.
func Send(out, errOut io.Writer, path string, cmd []string) int {
	reply, err := ctlsock.Query(path, strings.Join(cmd, " "))
	if err != nil {
		fmt.Fprintln(errOut, "xlatctl:", err)
		return 1
	}
	fmt.Fprintln(out, reply)
	if strings.HasPrefix(reply, "error:") {
		return 1
	}
	return 0
}

// Print writes the node at a glance.
func Print(w io.Writer, n *Node) {
	var roles []string
	if n.Clatd != nil {
		roles = append(roles, "CLAT")
	}
	if n.Platd != nil {
		roles = append(roles, "PLAT (exit)")
	}
	if len(roles) == 0 {
		roles = append(roles, "none running")
	}
	fmt.Fprintf(w, "role:        %s\n", strings.Join(roles, " + "))
	if c := n.Clatd; c != nil {
		fmt.Fprintf(w, "CLAT prefix: %s   clients: %s\n", c.CLATPrefix, c.ClientNet)
		fmt.Fprintf(w, "PLAT in use: %s\n", orNone(c.PLATPrefix))
		fmt.Fprintf(w, "clatd:       %d packets 4->6, %d 6->4, drops %s\n", c.Counters.Out4to6, c.Counters.Out6to4, drops(c.Counters.Drops))
	}
	if p := n.Prefixd; p != nil {
		fmt.Fprintf(w, "prefixd:     chose %s (routes from %s)\n", orNone(p.Current), p.Source)
		for _, c := range p.Candidates {
			probe := "not probed"
			if c.Probed {
				probe = "probe failing"
				if c.ProbeOK {
					probe = fmt.Sprintf("probe ok %.1f ms", float64(c.RTT)/1e6)
				}
			}
			mark := " "
			if c.Prefix.String() == p.Current {
				mark = "*"
			}
			fmt.Fprintf(w, "           %s %-34s metric %5d  %s\n", mark, c.Prefix, c.Metric, probe)
		}
		for _, s := range p.Switches[max(0, len(p.Switches)-3):] {
			fmt.Fprintf(w, "             switch %s: %s -> %s (%s)\n", s.Time.Format(time.DateTime), orNone(s.From), orNone(s.To), s.Reason)
		}
	}
	if r := n.L3roamd; r != nil {
		var macs []string
		roamed := 0
		if n.Clients != nil {
			for mac, c := range n.Clients.List {
				macs = append(macs, mac)
				if c.Roamed {
					roamed++
				}
			}
		}
		sort.Strings(macs)
		fmt.Fprintf(w, "l3roamd:     %d clients (%d roamed here)", len(macs), roamed)
		if len(r.PLATRoamed) > 0 {
			fmt.Fprintf(w, ", %d roamed clients held as PLAT", len(r.PLATRoamed))
		}
		fmt.Fprintln(w)
		for _, mac := range macs {
			c := n.Clients.List[mac]
			fmt.Fprintf(w, "             %s %s", mac, c.IPv4)
			if c.Roamed {
				fmt.Fprintf(w, " (lease from %s, sessions on %s)", c.CLATD, c.PLATC)
			}
			fmt.Fprintln(w)
		}
	}
	if p := n.Platd; p != nil {
		fmt.Fprintf(w, "platd:       PLAT %s -> %s (%s), sessions %d, ports %d of %d, drops %s\n", p.PLATPrefix, p.WANAddr,
			p.WAN, p.Sessions.Total, p.Sessions.PortsInUse, p.Sessions.PortsTotal, drops(p.Counters.Drops))
		if r := drops(p.Refused); r != "none" {
			fmt.Fprintf(w, "             refused: %s\n", r)
		}
	}
	keys := make([]string, 0, len(n.Errors))
	for d := range n.Errors {
		keys = append(keys, d)
	}
	sort.Strings(keys)
	for _, d := range keys {
		if strings.Contains(n.Errors[d], "no such file or directory") {
			continue // not installed or not running on this node: nothing to say
		}
		fmt.Fprintf(w, "%-12s not answering (%s)\n", d+":", n.Errors[d])
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// drops lists non-zero counters by reason.
func drops(d map[string]uint64) string {
	var out []string
	for k, v := range d {
		if v > 0 {
			out = append(out, fmt.Sprintf("%s %d", k, v))
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

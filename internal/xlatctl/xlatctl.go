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

	"github.com/gluon-464xlat/gluon-464xlat/internal/ctlsock"
)

// daemons in the order they are shown.
var daemons = []string{"clatd", "prefixd", "l3roamd", "platd"}

// Node is everything the daemons of one node report; a daemon that does not
// answer is absent (nil), with its error in Errors.
type Node struct {
	Clatd   map[string]any    `json:"clatd"`
	Prefixd map[string]any    `json:"prefixd"`
	L3roamd map[string]any    `json:"l3roamd"`
	Clients []map[string]any  `json:"l3roamd_clients"`
	Platd   map[string]any    `json:"platd"`
	Errors  map[string]string `json:"errors,omitempty"`
}

// Query asks every daemon at its socket in socks (daemon name -> path).
func Query(socks map[string]string) *Node {
	n := &Node{Errors: map[string]string{}}
	get := func(d, cmd string, into any) {
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
		}
	}
	for _, d := range daemons {
		var st map[string]any
		get(d, "status", &st)
		switch d {
		case "clatd":
			n.Clatd = st
		case "prefixd":
			n.Prefixd = st
		case "l3roamd":
			n.L3roamd = st
			if st != nil {
				get(d, "get_clients", &n.Clients)
			}
		case "platd":
			n.Platd = st
		}
	}
	if len(n.Errors) == 0 {
		n.Errors = nil
	}
	return n
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

func str(m map[string]any, k string) string {
	if v, ok := m[k]; ok && v != nil {
		return fmt.Sprint(v)
	}
	return ""
}

func num(m map[string]any, path ...string) float64 {
	var v any = m
	for _, p := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return 0
		}
		v = mm[p]
	}
	f, _ := v.(float64)
	return f
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
		fmt.Fprintf(w, "CLAT prefix: %s   clients: %s\n", str(c, "clat_prefix"), str(c, "client_net"))
		fmt.Fprintf(w, "PLAT in use: %s\n", orNone(str(c, "plat_prefix")))
		fmt.Fprintf(w, "clatd:       %.0f packets 4->6, %.0f 6->4, drops %s\n", num(c, "counters", "out_4to6"), num(c, "counters", "out_6to4"), drops(c))
	}
	if p := n.Prefixd; p != nil {
		fmt.Fprintf(w, "prefixd:     chose %s (routes from %s)\n", orNone(str(p, "current")), str(p, "route_source"))
		cands, _ := p["candidates"].([]any)
		for _, x := range cands {
			c, _ := x.(map[string]any)
			probe := "not probed"
			if c["probed"] == true {
				probe = "probe failing"
				if c["probe_ok"] == true {
					probe = fmt.Sprintf("probe ok %.1f ms", num(c, "rtt_ns")/1e6)
				}
			}
			mark := " "
			if str(c, "prefix") == str(p, "current") {
				mark = "*"
			}
			fmt.Fprintf(w, "           %s %-34s metric %5.0f  %s\n", mark, str(c, "prefix"), num(c, "metric"), probe)
		}
		sw, _ := p["switches"].([]any)
		for i := max(0, len(sw)-3); i < len(sw); i++ {
			s, _ := sw[i].(map[string]any)
			fmt.Fprintf(w, "             switch %s: %s -> %s (%s)\n", str(s, "time"), orNone(str(s, "from")), orNone(str(s, "to")), str(s, "reason"))
		}
	}
	if r := n.L3roamd; r != nil {
		roamed := 0
		for _, c := range n.Clients {
			if c["roamed_here"] == true {
				roamed++
			}
		}
		fmt.Fprintf(w, "l3roamd:     %d clients (%d roamed here)", len(n.Clients), roamed)
		if pr, _ := r["plat_roamed_clients"].([]any); len(pr) > 0 {
			fmt.Fprintf(w, ", %d roamed clients held as PLAT", len(pr))
		}
		fmt.Fprintln(w)
		for _, c := range n.Clients {
			fmt.Fprintf(w, "             %s %s", str(c, "mac"), str(c, "ipv4"))
			if c["roamed_here"] == true {
				fmt.Fprintf(w, " (lease from %s, sessions on %s)", str(c, "clat_prefix_of_lease"), str(c, "plat_of_sessions"))
			}
			fmt.Fprintln(w)
		}
	}
	if p := n.Platd; p != nil {
		fmt.Fprintf(w, "platd:       PLAT %s -> %s (%s), sessions %.0f, ports %.0f of %.0f, drops %s\n", str(p, "plat_prefix"), str(p, "wan_address"),
			str(p, "wan_dev"), num(p, "sessions", "total"), num(p, "sessions", "ports_in_use"), num(p, "sessions", "ports_total"), drops(p))
		var refused []string
		if r, ok := p["refused"].(map[string]any); ok {
			for k, v := range r {
				if f, _ := v.(float64); f > 0 {
					refused = append(refused, fmt.Sprintf("%s %.0f", k, f))
				}
			}
		}
		if len(refused) > 0 {
			sort.Strings(refused)
			fmt.Fprintf(w, "             refused: %s\n", strings.Join(refused, ", "))
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

// drops lists a daemon's non-zero drop counters by reason.
func drops(m map[string]any) string {
	c, _ := m["counters"].(map[string]any)
	d, _ := c["drops"].(map[string]any)
	var out []string
	for k, v := range d {
		if f, _ := v.(float64); f > 0 {
			out = append(out, fmt.Sprintf("%s %.0f", k, f))
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

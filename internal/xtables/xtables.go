// Package xtables writes the legacy (iptables) backends' rules: a daemon's
// own chains, each filled whole and hooked first into a built-in chain, in
// one iptables-restore --noflush run per family. That is atomic per table
// and one exec per change, where a rule-at-a-time library execs once per
// rule and leaves half a chain between two of them.
//
// Written by hand over os/exec: github.com/coreos/go-iptables (the library
// this replaces) pulls in regexp, about 130 KiB of MIPS code, for version
// parsing the daemons do not need.
package xtables

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Family is one of iptables or ip6tables, as the -save and -restore
// commands next to cmd ("iptables", "/usr/sbin/ip6tables-legacy", ...).
type Family struct {
	save, restore string
}

// New returns the family of cmd.
func New(cmd string) Family { return Family{save: cmd + "-save", restore: cmd + "-restore"} }

// Chain is one of a daemon's own chains with all its rules.
type Chain struct {
	Table string // filter, nat, raw, ...
	Name  string
	Hook  string     // the built-in chain that jumps here first; "" for none
	Rules [][]string // each rule's arguments after "-A Name"
}

// timeout bounds one command: the xtables lock is waited for 5 s (-w 5).
const timeout = 10 * time.Second

func (f Family) run(stdin string, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// rules is what iptables-save says: per table, per chain, each rule's
// arguments after "-A CHAIN" and its packet count.
type rules map[string]map[string][]rule

type rule struct {
	args    string
	packets uint64
}

func (f Family) read(table string) (rules, error) {
	args := []string{"-c"}
	if table != "" {
		args = append(args, "-t", table)
	}
	out, err := f.run("", f.save, args...)
	if err != nil {
		return nil, err
	}
	return parseSave(out), nil
}

// parseSave reads iptables-save -c output: "*table" lines, ":CHAIN" lines
// (a chain that exists, even empty) and "[packets:bytes] -A CHAIN args".
func parseSave(out []byte) rules {
	rs := rules{}
	var table string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "*"):
			table = line[1:]
			rs[table] = map[string][]rule{}
		case strings.HasPrefix(line, ":") && table != "":
			name, _, _ := strings.Cut(line[1:], " ")
			if _, ok := rs[table][name]; !ok {
				rs[table][name] = []rule{}
			}
		case strings.HasPrefix(line, "[") && table != "":
			cnt, rest, ok := strings.Cut(line[1:], "] -A ")
			if !ok {
				continue
			}
			chain, args, _ := strings.Cut(rest, " ")
			p, _, _ := strings.Cut(cnt, ":")
			n, _ := strconv.ParseUint(p, 10, 64)
			rs[table][chain] = append(rs[table][chain], rule{args: args, packets: n})
		}
	}
	return rs
}

// jumps counts the rules of hook in table that are exactly "-j chain".
func (rs rules) jumps(table, hook, chain string) int {
	n := 0
	for _, r := range rs[table][hook] {
		if r.args == "-j "+chain {
			n++
		}
	}
	return n
}

func (rs rules) exists(table, chain string) bool {
	_, ok := rs[table][chain]
	return ok
}

// tables lists the tables of chains in their first order.
func tables(chains []Chain) []string {
	var ts []string
	for _, c := range chains {
		if !slices.Contains(ts, c.Table) {
			ts = append(ts, c.Table)
		}
	}
	return ts
}

// Write makes each chain hold exactly its rules (a missing chain is made)
// and be jumped to first from its hook (once), in one transaction per
// table.
func (f Family) Write(chains ...Chain) error {
	var have rules
	for _, c := range chains {
		if c.Hook != "" && have == nil {
			var err error
			if have, err = f.read(""); err != nil {
				return err
			}
		}
	}
	script, err := writeScript(chains, have)
	if err != nil {
		return err
	}
	_, err = f.run(script, f.restore, "--noflush", "-w", "5")
	return err
}

// writeScript is Write's iptables-restore input; have is the state before
// (nil when no chain has a hook).
func writeScript(chains []Chain, have rules) (string, error) {
	var b strings.Builder
	for _, t := range tables(chains) {
		fmt.Fprintf(&b, "*%s\n", t)
		// declared first: with --noflush, declaring a chain empties it (or
		// makes it), and rules may jump to any of them
		for _, c := range chains {
			if c.Table == t {
				fmt.Fprintf(&b, ":%s - [0:0]\n", c.Name)
			}
		}
		for _, c := range chains {
			if c.Table != t {
				continue
			}
			for _, r := range c.Rules {
				for _, a := range r {
					if a == "" || strings.ContainsAny(a, " \t\n\"'") {
						return "", fmt.Errorf("xtables: rule argument %q in %s %s", a, t, c.Name)
					}
				}
				fmt.Fprintf(&b, "-A %s %s\n", c.Name, strings.Join(r, " "))
			}
			if c.Hook != "" && have.jumps(t, c.Hook, c.Name) == 0 {
				fmt.Fprintf(&b, "-I %s 1 -j %s\n", c.Hook, c.Name)
			}
		}
		b.WriteString("COMMIT\n")
	}
	return b.String(), nil
}

// Remove deletes the chains that exist and every jump to them from their
// hooks, in one transaction per table.
func (f Family) Remove(chains ...Chain) error {
	have, err := f.read("")
	if err != nil {
		return err
	}
	script := removeScript(chains, have)
	if script == "" {
		return nil
	}
	_, err = f.run(script, f.restore, "--noflush", "-w", "5")
	return err
}

func removeScript(chains []Chain, have rules) string {
	var b strings.Builder
	for _, t := range tables(chains) {
		var del, flush, drop []string
		for _, c := range chains {
			if c.Table != t || !have.exists(t, c.Name) {
				continue
			}
			if c.Hook != "" {
				for i := have.jumps(t, c.Hook, c.Name); i > 0; i-- {
					del = append(del, fmt.Sprintf("-D %s -j %s\n", c.Hook, c.Name))
				}
			}
			flush = append(flush, fmt.Sprintf(":%s - [0:0]\n", c.Name))
			drop = append(drop, fmt.Sprintf("-X %s\n", c.Name))
		}
		if len(flush) == 0 {
			continue
		}
		// emptied first, so that chains jumping to each other can go
		b.WriteString("*" + t + "\n" + strings.Join(flush, "") + strings.Join(del, "") + strings.Join(drop, "") + "COMMIT\n")
	}
	return b.String()
}

// Packets returns the packet count of each rule of table's chain, in order
// (nil when the chain does not exist).
func (f Family) Packets(table, chain string) ([]uint64, error) {
	have, err := f.read(table)
	if err != nil {
		return nil, err
	}
	var ns []uint64
	for _, r := range have[table][chain] {
		ns = append(ns, r.packets)
	}
	return ns, nil
}

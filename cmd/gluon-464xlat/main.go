// Command gluon-464xlat is every daemon of the suite in one binary, chosen
// by the name it is called by (a symlink /usr/sbin/clatd -> gluon-464xlat)
// or by its first argument (gluon-464xlat clatd -flags...).
//
// One binary because flash is the scarcest resource on the routers: the Go
// runtime, netlink and the translator are shared instead of paid once per
// daemon (see make size).
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gluon-464xlat/gluon-464xlat/daemon/clatd"
	"github.com/gluon-464xlat/gluon-464xlat/daemon/l3roamd"
	"github.com/gluon-464xlat/gluon-464xlat/daemon/platd"
	"github.com/gluon-464xlat/gluon-464xlat/daemon/prefixd"
	"github.com/gluon-464xlat/gluon-464xlat/internal/cli"
	"github.com/gluon-464xlat/gluon-464xlat/internal/xlatctl"
)

var commands = map[string]func(args []string){
	"clatd":   clatd.Main,
	"l3roamd": l3roamd.Main,
	"platd":   platd.Main,
	"prefixd": prefixd.Main,
	"xlatctl": xlatctl.Main,
}

func main() {
	if run, ok := commands[filepath.Base(os.Args[0])]; ok {
		run(os.Args[1:])
		return
	}
	if len(os.Args) > 1 {
		if run, ok := commands[os.Args[1]]; ok {
			os.Args = os.Args[1:] // the daemon sees its own name
			run(os.Args[1:])
			return
		}
		if os.Args[1] == "-version" || os.Args[1] == "--version" {
			fmt.Println("gluon-464xlat", cli.Version)
			return
		}
	}
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(os.Stderr, "usage: gluon-464xlat {%s} [flags], or call it by one of those names\n", strings.Join(names, "|"))
	os.Exit(2)
}

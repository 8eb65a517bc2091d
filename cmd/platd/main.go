// Command platd runs the platd daemon; see package daemon/platd.
package main

import (
	"os"

	"github.com/gluon-464xlat/gluon-464xlat/daemon/platd"
)

func main() { platd.Main(os.Args[1:]) }

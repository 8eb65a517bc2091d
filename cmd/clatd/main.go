// Command clatd runs the clatd daemon; see package daemon/clatd.
package main

import (
	"os"

	"github.com/gluon-464xlat/gluon-464xlat/daemon/clatd"
)

func main() { clatd.Main(os.Args[1:]) }

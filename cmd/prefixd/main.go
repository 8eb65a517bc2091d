// Command prefixd runs the prefixd daemon; see package daemon/prefixd.
package main

import (
	"os"

	"github.com/gluon-464xlat/gluon-464xlat/daemon/prefixd"
)

func main() { prefixd.Main(os.Args[1:]) }

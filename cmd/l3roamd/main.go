// Command l3roamd runs the l3roamd daemon; see package daemon/l3roamd.
package main

import (
	"os"

	"github.com/gluon-464xlat/gluon-464xlat/daemon/l3roamd"
)

func main() { l3roamd.Main(os.Args[1:]) }

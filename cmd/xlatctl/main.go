// Command xlatctl shows a node at a glance; see package internal/xlatctl.
package main

import (
	"os"

	"github.com/gluon-464xlat/gluon-464xlat/internal/xlatctl"
)

func main() { xlatctl.Main(os.Args[1:]) }

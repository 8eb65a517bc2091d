// Command traffic is the lab's traffic tool (the e2e tests' helper modes as a
// program, for the benchmark scripts): tcp-serve, tcp-fetch, udp-echo,
// udp-ping, udp-flows, new-sessions, udp-blast. Not shipped to routers.
package main

import (
	"os"

	"github.com/gluon-464xlat/gluon-464xlat/internal/netlab"
)

func main() {
	os.Setenv("NETLAB_HELPER", "1")
	netlab.HelperMain()
}

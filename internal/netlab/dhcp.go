package netlab

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
)

// dhcpClient is a client's DHCP as the tests need it: one lease, the
// address and default route set from it, and a renewal (RFC 2131 4.4.5,
// unicast to the server that gave the lease) each time SIGUSR1 comes. It
// prints "lease IP SECONDS" and "renewed IP SECONDS" or "renew failed: ...".
func dhcpClient(ifname string) error {
	c, err := nclient4.New(ifname, nclient4.WithTimeout(2*time.Second), nclient4.WithRetry(5))
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	lease, err := c.Request(ctx)
	cancel()
	if err != nil {
		return fmt.Errorf("DHCP: %w", err)
	}
	ack := lease.ACK
	bits, _ := net.IPMask(ack.SubnetMask()).Size()
	if out, err := exec.Command("ip", "addr", "add", fmt.Sprintf("%s/%d", ack.YourIPAddr, bits), "dev", ifname).CombinedOutput(); err != nil {
		return fmt.Errorf("ip addr: %v %s", err, out)
	}
	if r := ack.Router(); len(r) > 0 {
		if out, err := exec.Command("ip", "route", "replace", "default", "via", r[0].String()).CombinedOutput(); err != nil {
			return fmt.Errorf("ip route: %v %s", err, out)
		}
	}
	fmt.Printf("lease %s %d\n", ack.YourIPAddr, int(ack.IPAddressLeaseTime(0)/time.Second))
	for _, d := range ack.DNS() {
		fmt.Printf("dns %s\n", d) // option 6, what a client's resolver would use
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGINT)
	for s := range sig {
		if s != syscall.SIGUSR1 {
			return nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		renewed, err := c.Renew(ctx, lease)
		cancel()
		if err != nil {
			fmt.Printf("renew failed: %v\n", err)
			continue
		}
		lease = renewed
		fmt.Printf("renewed %s %d\n", renewed.ACK.YourIPAddr, int(renewed.ACK.IPAddressLeaseTime(0)/time.Second))
	}
	return nil
}

package l3roamd

import (
	"bufio"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
)

// The clients' DHCP leases (dnsmasq's lease file): how long a roamed
// client's IPv4 state lives.

// leases is dnsmasq's lease file: the time left of each "MAC IP" lease.
type leases map[string]time.Duration

// readLeases reads the lease file once (absent: no leases).
func (d *daemon) readLeases() leases {
	ls := leases{}
	f, err := os.Open(d.c.leases)
	if err != nil {
		return ls
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		// expiry mac ip hostname client-id
		fs := strings.Fields(s.Text())
		if len(fs) < 3 {
			continue
		}
		exp, err := strconv.ParseInt(fs[0], 10, 64)
		if err != nil {
			break
		}
		key := strings.ToLower(fs[1]) + " " + fs[2]
		if _, seen := ls[key]; seen {
			continue
		}
		if exp == 0 { // infinite
			ls[key] = d.c.maxLease
		} else if left := time.Until(time.Unix(exp, 0)); left > time.Second {
			ls[key] = left
		}
	}
	return ls
}

// leaseLeft is the client's remaining lease; found is false when ls has
// none (the default is returned then).
func (d *daemon) leaseLeft(ls leases, mac net.HardwareAddr, ip4 netip.Addr) (left time.Duration, found bool) {
	if left, ok := ls[mac.String()+" "+ip4.String()]; ok {
		return left, true
	}
	return d.c.defaultLease, false
}

// refreshLeases follows dnsmasq: a lease given or renewed here sets how
// long the client's 464xlat state lives, and a roamed client's renewal is
// passed on to its PLAT (a new ROAM), so its sessions outlive the lease
// it had when it arrived.
func (d *daemon) refreshLeases() {
	type roam struct {
		ip4          netip.Addr
		lease        uint32
		clatd, platc netip.Prefix
	}
	var again []roam
	ls := d.readLeases() // once for all clients, before taking the lock
	d.mu.Lock()
	changed := false
	for _, cl := range d.clients {
		x, ok := d.xlat[cl.ip4]
		if !cl.ip4.IsValid() || !ok {
			continue
		}
		left, found := d.leaseLeft(ls, cl.mac, cl.ip4)
		if !found {
			continue
		}
		exp := time.Now().Add(left)
		if diff := exp.Sub(x.expires); diff > 5*time.Second || (diff < -5*time.Second && x.clatd == d.c.clat) {
			x.expires = exp
			d.xlat[cl.ip4] = x
			changed = true
			if x.clatd != d.c.clat {
				again = append(again, roam{cl.ip4, uint32(left / time.Second), x.clatd, x.platc})
			}
		}
	}
	if changed {
		d.apply()
	}
	d.mu.Unlock()
	for _, r := range again {
		d.sendRoam(r.ip4, r.lease, r.clatd, r.platc, 0)
	}
}

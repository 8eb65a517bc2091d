// Package babel speaks babeld's local configuration interface (babeld(8),
// "LOCAL CONFIGURATION INTERFACE"): it connects to the unix socket or TCP
// port, reads the greeting, asks for "monitor" and parses the stream of
// "add|change|flush route ..." lines into a route table.
package babel

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Unreachable is the metric babeld gives a retracted route.
const Unreachable = 65535

// Route is one route line, e.g.
//
//	add route 55dea6d060d0 prefix fddd:1337:1338:cccc:cccc:cccc::/96 from ::/0 installed yes
//	    id 20:bb:2f:77:87:c2:11:eb metric 96 refmetric 0 via fe80::7ccc:c1ff:fe2e:95da if bc
type Route struct {
	ID        string // babeld's handle for this route (one per neighbour and prefix)
	Prefix    netip.Prefix
	From      netip.Prefix
	Installed bool
	RouterID  string
	Metric    int
	RefMetric int
	Via       netip.Addr
	If        string
}

// Event is one parsed line. Route is set for route lines only.
type Event struct {
	Verb   string // add, change or flush
	Object string // route, xroute, interface, neighbour
	Route  *Route
}

// ErrNotEvent marks lines that are not events (greeting, "ok", "BABEL 1.0").
var ErrNotEvent = errors.New("not an event line")

// ParseLine parses one line of babeld's local interface. Route lines are
// checked field by field; a malformed one is an error (and not applied).
func ParseLine(line string) (Event, error) {
	f := strings.Fields(line)
	if len(f) < 3 {
		return Event{}, ErrNotEvent
	}
	switch f[0] {
	case "add", "change", "flush":
	default:
		return Event{}, ErrNotEvent
	}
	ev := Event{Verb: f[0], Object: f[1]}
	if ev.Object != "route" {
		return ev, nil
	}
	r := &Route{ID: f[2], Metric: -1}
	kv := f[3:]
	if len(kv)%2 != 0 {
		return Event{}, fmt.Errorf("route line has a key without a value: %q", line)
	}
	var err error
	for i := 0; i < len(kv); i += 2 {
		k, v := kv[i], kv[i+1]
		switch k {
		case "prefix":
			r.Prefix, err = netip.ParsePrefix(v)
		case "from":
			r.From, err = netip.ParsePrefix(v)
		case "installed":
			if v != "yes" && v != "no" {
				err = fmt.Errorf("installed %q", v)
			}
			r.Installed = v == "yes"
		case "id":
			r.RouterID = v
		case "metric":
			r.Metric, err = parseMetric(v)
		case "refmetric":
			r.RefMetric, err = parseMetric(v)
		case "via":
			r.Via, err = netip.ParseAddr(v)
		case "if":
			r.If = v
		}
		if err != nil {
			return Event{}, fmt.Errorf("route line, %s: %v: %q", k, err, line)
		}
	}
	// A flush may carry only the handle; add and change must be complete.
	if ev.Verb != "flush" && (!r.Prefix.IsValid() || r.Metric < 0) {
		return Event{}, fmt.Errorf("route line without prefix or metric: %q", line)
	}
	ev.Route = r
	return ev, nil
}

func parseMetric(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > Unreachable {
		return 0, fmt.Errorf("metric %q out of 0..65535", s)
	}
	return n, nil
}

// Table holds the routes babeld reported, by handle.
type Table struct {
	routes map[string]Route
}

// NewTable returns an empty table.
func NewTable() *Table { return &Table{routes: map[string]Route{}} }

// Apply applies an event (non-route events are ignored).
func (t *Table) Apply(ev Event) {
	if ev.Route == nil {
		return
	}
	if ev.Verb == "flush" {
		delete(t.routes, ev.Route.ID)
		return
	}
	t.routes[ev.Route.ID] = *ev.Route
}

// Reset forgets everything (babeld went away).
func (t *Table) Reset() { t.routes = map[string]Route{} }

// Best returns, for every prefix that keep accepts, the route babeld uses:
// the installed one, else the one with the lowest metric.
func (t *Table) Best(keep func(netip.Prefix) bool) map[netip.Prefix]Route {
	res := map[netip.Prefix]Route{}
	for _, r := range t.routes {
		if !keep(r.Prefix) {
			continue
		}
		cur, ok := res[r.Prefix]
		if !ok || r.Installed && !cur.Installed || r.Installed == cur.Installed && r.Metric < cur.Metric {
			res[r.Prefix] = r
		}
	}
	return res
}

// Conn is a connection to babeld's local interface.
type Conn struct {
	c  net.Conn
	sc *bufio.Scanner
}

// Dial connects to addr: a unix socket path (starting with /) or host:port
// (babeld's -G port listens on ::1), and reads the greeting up to "ok".
func Dial(addr string) (*Conn, error) {
	network := "tcp"
	if strings.HasPrefix(addr, "/") {
		network = "unix"
	}
	c, err := net.DialTimeout(network, addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	b := &Conn{c: c, sc: bufio.NewScanner(c)}
	b.sc.Buffer(make([]byte, 4096), 64<<10)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	first := true
	for b.sc.Scan() {
		line := b.sc.Text()
		if first && !strings.HasPrefix(line, "BABEL") {
			c.Close()
			return nil, fmt.Errorf("%s does not greet like babeld: %q", addr, line)
		}
		first = false
		if line == "ok" {
			c.SetReadDeadline(time.Time{})
			return b, nil
		}
	}
	c.Close()
	if err := b.sc.Err(); err != nil {
		return nil, err
	}
	return nil, errors.New("babeld closed the connection during the greeting")
}

// Monitor asks for the event stream; babeld first dumps its state.
func (b *Conn) Monitor() error {
	_, err := fmt.Fprintln(b.c, "monitor")
	return err
}

// Next returns the next line; an error when the connection ends.
func (b *Conn) Next() (string, error) {
	if b.sc.Scan() {
		return b.sc.Text(), nil
	}
	if err := b.sc.Err(); err != nil {
		return "", err
	}
	return "", errors.New("babeld closed the connection")
}

// Close closes the connection.
func (b *Conn) Close() error { return b.c.Close() }

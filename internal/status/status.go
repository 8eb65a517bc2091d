// Package status is what each daemon answers to `status` on its control
// socket: the daemons encode these types and xlatctl decodes them, so a
// renamed field breaks the build, not a script. The JSON keys are the
// contract with the world outside Go as well (scripts with jsonfilter,
// Gluon's respondd provider): change one only with all its readers.
package status

import (
	"net/netip"
	"time"

	"github.com/gluon-464xlat/gluon-464xlat/siit"
)

// Counters is what a TUN engine (clatd's, platd's stateless step) counted:
// the translator's counters summed over its queues, and the TUN's errors.
type Counters struct {
	siit.Snapshot
	Queues    int    `json:"queues"`
	ReadErrs  uint64 `json:"tun_read_errors"`
	WriteErrs uint64 `json:"tun_write_errors"`
}

// Clatd is clatd's status.
type Clatd struct {
	Version    string   `json:"version"`
	Dev        string   `json:"dev"`
	CLATPrefix string   `json:"clat_prefix"`
	PLATPrefix string   `json:"plat_prefix"` // "" while prefixd has none
	ClientNet  string   `json:"client_net"`
	MTU        int      `json:"mtu"`
	Offload    bool     `json:"offload"`
	UptimeSec  int64    `json:"uptime_s"`
	Counters   Counters `json:"counters"`
	// The kernel fast path: "on" or "off", why it is off, and its packets
	// by direction (fast_4to6, fast_6to4; direct_4to6, direct_6to4 of them
	// sent straight out) and by why they took the TUN.
	FastPath         string            `json:"fastpath"`
	FastPathReason   string            `json:"fastpath_reason,omitempty"`
	FastPathCounters map[string]uint64 `json:"fastpath_counters,omitempty"`
	// FastPathEarly: the clients' device when the program runs at its
	// ingress too (UDP and echo sent before their IPv4 forwarding).
	FastPathEarly string `json:"fastpath_early,omitempty"`
	// RoamedClients: how many clients l3roamd said roamed here (set_roamed):
	// their packets are never sent direct.
	RoamedClients int `json:"roamed_clients"`
}

// Platd is platd's status.
type Platd struct {
	Version    string            `json:"version"`
	Dev        string            `json:"dev"`
	PLATPrefix string            `json:"plat_prefix"`
	CLATRange  string            `json:"clat_range"`
	Mgmt       string            `json:"mgmt_address"`
	WAN        string            `json:"wan_dev"`
	WANAddr    string            `json:"wan_address"`
	PortRange  string            `json:"port_range"`
	UptimeSec  int64             `json:"uptime_s"`
	Counters   Counters          `json:"counters"`
	Refused    map[string]uint64 `json:"refused"` // new sessions refused, by reason
	Sessions   Sessions          `json:"sessions"`
	Full       bool              `json:"refusing_new_sessions"`
	Conntrack  [2]int            `json:"conntrack_entries_limit"` // entries, limit
	WANWatch   uint64            `json:"wan_watch_restarts"`
	// PortGuard says who counts each destination's sessions against the
	// port range: "kernel" (nftables or iptables, on every new session),
	// "bpf" (a BPF filter on conntrack's events, platd reads those that
	// change a destination's verdict) or "events" (platd, from every
	// conntrack event); PortsFull is the number of destinations whose
	// ports are used up (bpf and events).
	PortGuard string `json:"port_guard"`
	PortsFull int    `json:"destinations_out_of_ports"`
	// whole recounts from a dump: at start, and after the kernel dropped events
	PortGuardRecounts uint64 `json:"port_guard_recounts,omitempty"`
	// bpf: events the filter could not count (laid out unlike the
	// kernel's, or a destination beyond its map): never expected
	PortGuardUncounted uint64 `json:"port_guard_uncounted,omitempty"`
	// Clients: each CLAT address has an IPv4 address of its own from
	// ClientPool while conntrack holds sessions of it.
	ClientPool string      `json:"client_pool"`
	Clients    ClientsPool `json:"clients"`
	// the kernel fast path of the stateless step, as clatd's
	FastPath         string            `json:"fastpath"`
	FastPathReason   string            `json:"fastpath_reason,omitempty"`
	FastPathCounters map[string]uint64 `json:"fastpath_counters,omitempty"`
}

// ClientsPool is the use of platd's client pool.
type ClientsPool struct {
	Mapped    int    `json:"mapped"`
	Orphans   int    `json:"orphans,omitempty"` // held for sessions of a client a lost journal no longer names
	Free      int    `json:"free"`
	Refused   uint64 `json:"refused"`   // new clients that found no address left
	Reclaimed uint64 `json:"reclaimed"` // addresses given back (no session left)
}

// Sessions summarises platd's NAT64 sessions (its conntrack entries).
type Sessions struct {
	Total      int            `json:"total"`
	PerCLAT    map[string]int `json:"per_clat,omitempty"`
	IPv4       int            `json:"ipv4_entries"`
	PortsInUse int            `json:"ports_in_use"`
	PortsTotal int            `json:"ports_total"`
	Omitted    string         `json:"detail_omitted,omitempty"` // why per_clat is missing
}

// Prefixd is prefixd's status.
type Prefixd struct {
	Version     string          `json:"version"`
	Current     string          `json:"current"` // the PLAT in use, "" for none
	Source      string          `json:"route_source"`
	BadLines    uint64          `json:"malformed_babel_lines"`
	Candidates  []Candidate     `json:"candidates"` // best metric first
	Switches    []Switch        `json:"switches"`   // oldest first, the last 20
	SwitchCount uint64          `json:"switches_total"`
	Peers       map[string]Peer `json:"peers"`
}

// Candidate is one PLAT a node could use.
type Candidate struct {
	Prefix  netip.Prefix  `json:"prefix"`
	Metric  int           `json:"metric"`
	Via     string        `json:"via,omitempty"`
	Own     bool          `json:"own,omitempty"`
	Probed  bool          `json:"probed"`
	ProbeOK bool          `json:"probe_ok"`
	Fails   int           `json:"probe_failures"`
	RTT     time.Duration `json:"rtt_ns,omitempty"`
}

// Switch is one change of the PLAT in use.
type Switch struct {
	Time   time.Time `json:"time"`
	From   string    `json:"from"`
	To     string    `json:"to"`
	Reason string    `json:"reason"`
}

// Peer is a daemon prefixd tells its choice (clatd, l3roamd).
type Peer struct {
	Socket string `json:"socket"`
	Synced bool   `json:"synced"`
	Error  string `json:"error,omitempty"`
}

// L3roamd is l3roamd's status.
type L3roamd struct {
	Version        string            `json:"version"`
	NodeIP         string            `json:"node_ip"`
	CLATPrefix     string            `json:"clat_prefix"`
	PLATPrefix     string            `json:"plat_prefix"`
	OwnPLAT        string            `json:"own_plat"`
	Clients        int               `json:"clients"`
	Clients464xlat int               `json:"clients_464xlat"`
	PLATRoamed     []Roam            `json:"plat_roamed_clients"`
	Counters       map[string]uint64 `json:"counters"`
}

// Roam is a roamed client's sessions an exit keeps pointing at the node the
// client is at now.
type Roam struct {
	SessionsOf string `json:"sessions_of"` // the CLAT address the sessions were opened from
	NowAt      string `json:"now_at"`
	LeaseLeftS int    `json:"lease_left_s"`
}

// Clients is l3roamd's `get_clients` in the C l3roamd's shape, which
// Gluon's respondd provider reads with json-c ("clients", the count):
// "clientlist" by MAC, each with "interface" and "addresses" (IPv4 ones
// IPv4-mapped, as the C daemon keeps them); the other keys are this
// daemon's own.
type Clients struct {
	Count int               `json:"clients"`
	List  map[string]Client `json:"clientlist,omitempty"`
}

// Client is one client l3roamd knows.
type Client struct {
	Interface string                  `json:"interface"`
	Addresses map[string]AddressState `json:"addresses,omitempty"`
	IPv4      string                  `json:"ipv4,omitempty"`
	Claiming  bool                    `json:"claiming,omitempty"`
	CLATD     string                  `json:"clat_prefix_of_lease,omitempty"` // the node whose lease it holds
	PLATC     string                  `json:"plat_of_sessions,omitempty"`
	LeaseS    int                     `json:"lease_left_s,omitempty"`
	Roamed    bool                    `json:"roamed_here"`
}

// AddressState is the C daemon's state of a client address: 0 inactive,
// 1 active, 2 tentative.
type AddressState struct {
	State int `json:"state"`
}

// Address states.
const (
	AddressInactive  = 0
	AddressActive    = 1
	AddressTentative = 2
)

package header

// The offload state a packet carries through a Linux TUN with IFF_VNET_HDR:
// the fields of struct virtio_net_hdr that say what the kernel left to do
// (segmentation, the transport checksum). The TUN layer reads and writes
// them; the translator keeps them true across a change of IP version.

// GSO kinds (virtio-net's gso_type).
const (
	GSONone  = 0
	GSOTCPv4 = 1
	GSOUDP   = 3
	GSOTCPv6 = 4
	GSOUDPL4 = 5
	GSOECN   = 0x80
)

// Offload is a packet's segmentation/checksum state. csum_start/offset and
// hdr_len follow from the packet's own headers, so only these travel.
type Offload struct {
	GSOType   uint8  // GSONone, GSOTCPv4, GSOTCPv6, GSOUDPL4 (| GSOECN)
	GSOSize   uint16 // segment payload size
	NeedsCsum bool   // the L4 checksum field holds only the pseudo-header sum
}

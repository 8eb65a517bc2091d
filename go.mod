module github.com/gluon-464xlat/gluon-464xlat

go 1.21

require (
	github.com/google/nftables v0.3.0
	github.com/gopacket/gopacket v1.2.0
	github.com/insomniacslk/dhcp v0.0.0-20250109001534-8abf58130905
	github.com/mdlayher/genetlink v1.3.2
	github.com/mdlayher/netlink v1.7.3-0.20250113171957-fbb4dce95f42
	github.com/ti-mo/conntrack v0.5.1
	github.com/ti-mo/netfilter v0.5.2
	github.com/vishvananda/netlink v1.3.1
	golang.org/x/net v0.35.0
	golang.org/x/sys v0.30.0
	golang.org/x/time v0.9.0
)

require (
	github.com/google/go-cmp v0.7.0 // indirect
	github.com/josharian/native v1.1.0 // indirect
	github.com/mdlayher/packet v1.1.2 // indirect
	github.com/mdlayher/socket v0.5.1 // indirect
	github.com/pierrec/lz4/v4 v4.1.14 // indirect
	github.com/pkg/errors v0.9.1 // indirect
	github.com/u-root/uio v0.0.0-20230220225925-ffce2a382923 // indirect
	github.com/vishvananda/netns v0.0.5 // indirect
	golang.org/x/sync v0.7.0 // indirect
)

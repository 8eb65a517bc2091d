// Package nftexpr builds the nftables rule expressions platd and l3roamd
// share (google/nftables speaks the kernel's expression language, one
// register operation at a time; these are the phrases of it the daemons
// use, each named as `nft` would write it).
package nftexpr

import (
	"net/netip"

	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Address offsets in the network header.
const (
	IPv4Src = 12
	IPv4Dst = 16
	IPv6Src = 8
	IPv6Dst = 24
)

// IfName is an interface name as the kernel compares it (IFNAMSIZ bytes).
func IfName(n string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, n)
	return b
}

// MetaCmp is `meta KEY OP data`.
func MetaCmp(key expr.MetaKey, op expr.CmpOp, data []byte) []expr.Any {
	return []expr.Any{&expr.Meta{Key: key, Register: 1}, &expr.Cmp{Op: op, Register: 1, Data: data}}
}

// MetaIs is `meta KEY data`.
func MetaIs(key expr.MetaKey, data []byte) []expr.Any { return MetaCmp(key, expr.CmpOpEq, data) }

// IIF is `iifname dev`.
func IIF(dev string) []expr.Any { return MetaIs(expr.MetaKeyIIFNAME, IfName(dev)) }

// OIF is `oifname dev`.
func OIF(dev string) []expr.Any { return MetaIs(expr.MetaKeyOIFNAME, IfName(dev)) }

// NFProto is `meta nfproto ipv4|ipv6` (unix.NFPROTO_IPV4, NFPROTO_IPV6).
func NFProto(proto byte) []expr.Any { return MetaIs(expr.MetaKeyNFPROTO, []byte{proto}) }

// CtStateNew is `ct state new`.
func CtStateNew() []expr.Any { return ctStateNew(expr.CmpOpNeq) }

// CtStateNotNew is `ct state & new == 0`: established, related, untracked.
func CtStateNotNew() []expr.Any { return ctStateNew(expr.CmpOpEq) }

func ctStateNew(op expr.CmpOp) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitNEW), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: op, Register: 1, Data: []byte{0, 0, 0, 0}},
	}
}

// LoadAddr loads the IPv4 or IPv6 address at network header offset off into
// register 1.
func LoadAddr(off uint32, v6 bool) *expr.Payload {
	n := uint32(4)
	if v6 {
		n = 16
	}
	return &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n}
}

// AddrIn is `ip saddr|daddr OP p` for the address at off (IPv4Src, IPv6Dst,
// ...): the address masked to p's length compared with p.
func AddrIn(off uint32, p netip.Prefix, op expr.CmpOp) []expr.Any {
	l := LoadAddr(off, p.Addr().Is6())
	mask := make([]byte, l.Len)
	for i := 0; i < p.Bits(); i++ {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	return []expr.Any{l,
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: l.Len, Mask: mask, Xor: make([]byte, l.Len)},
		&expr.Cmp{Op: op, Register: 1, Data: p.Masked().Addr().AsSlice()}}
}

// Counter is `counter name NAME` (a named counter object).
func Counter(name string) expr.Any { return &expr.Objref{Type: 1, Name: name} } // NFT_OBJECT_COUNTER

// RejectAdmin is `reject with icmpx admin-prohibited`.
func RejectAdmin() expr.Any {
	return &expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_ADMIN_PROHIBITED}
}

// Join concatenates phrases into one rule's expressions.
func Join(parts ...[]expr.Any) []expr.Any {
	var r []expr.Any
	for _, p := range parts {
		r = append(r, p...)
	}
	return r
}

// CtMarkOr is `ct mark set ct mark | bits`: the other bits stay whoever's
// they are.
func CtMarkOr(bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeyMARK},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(^bits), Xor: binaryutil.NativeEndian.PutUint32(bits)},
		&expr.Ct{Register: 1, Key: expr.CtKeyMARK, SourceRegister: true},
	}
}

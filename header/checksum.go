package header

import "encoding/binary"

// Sum adds b to the running one's-complement sum (RFC 1071) without folding.
// 32-bit words go into a 64-bit accumulator, so carries never need handling
// inside the loop (a 64 KiB packet adds at most 2^14 words).
func Sum(b []byte, acc uint64) uint64 {
	for len(b) >= 32 {
		acc += uint64(binary.BigEndian.Uint32(b[0:]))
		acc += uint64(binary.BigEndian.Uint32(b[4:]))
		acc += uint64(binary.BigEndian.Uint32(b[8:]))
		acc += uint64(binary.BigEndian.Uint32(b[12:]))
		acc += uint64(binary.BigEndian.Uint32(b[16:]))
		acc += uint64(binary.BigEndian.Uint32(b[20:]))
		acc += uint64(binary.BigEndian.Uint32(b[24:]))
		acc += uint64(binary.BigEndian.Uint32(b[28:]))
		b = b[32:]
	}
	for len(b) >= 4 {
		acc += uint64(binary.BigEndian.Uint32(b))
		b = b[4:]
	}
	if len(b) >= 2 {
		acc += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint64(b[0]) << 8
	}
	return acc
}

// Fold folds a 64-bit sum into 16 bits (not complemented).
func Fold(acc uint64) uint16 {
	acc = (acc >> 32) + (acc & 0xffffffff)
	acc = (acc >> 32) + (acc & 0xffffffff)
	acc = (acc >> 16) + (acc & 0xffff)
	acc = (acc >> 16) + (acc & 0xffff)
	return uint16(acc)
}

// Checksum returns the Internet checksum of b started from acc.
func Checksum(b []byte, acc uint64) uint16 { return ^Fold(Sum(b, acc)) }

// PseudoSum returns the unfolded sum of a pseudo-header (RFC 793/768 for IPv4,
// RFC 8200 section 8.1 for IPv6: both sum to the same words, so one function).
func PseudoSum(src, dst []byte, proto uint8, length int) uint64 {
	acc := Sum(src, 0)
	acc = Sum(dst, acc)
	return acc + uint64(proto) + uint64(length)
}

// UpdateChecksum adjusts a complemented checksum field when summed data
// changed from an old sum to a new sum (RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m')).
func UpdateChecksum(field uint16, oldSum, newSum uint64) uint16 {
	acc := uint64(^field) + uint64(^Fold(oldSum)) + uint64(Fold(newSum))
	return ^Fold(acc)
}

// UpdatePartial adjusts a partial (non-complemented pseudo-header) checksum
// field, as the kernel leaves it for CHECKSUM_PARTIAL/NEEDS_CSUM packets.
func UpdatePartial(field uint16, oldSum, newSum uint64) uint16 {
	acc := uint64(field) + uint64(^Fold(oldSum)) + uint64(Fold(newSum))
	return Fold(acc)
}

package intercom

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
)

// Auth is the trailing AUTH TLV of INFO_XLAT and ROAM: the sender's clock
// (unix seconds) and HMAC-SHA256 truncated to 128 bits, keyed with the
// mesh's roaming key, over the whole packet up to and including the time,
// with the TTL byte taken as 0 (it may change on the way).
type Auth struct {
	Time uint32
	Sum  [16]byte
}

// Errors of Verify.
var (
	ErrNoAuth    = errors.New("not authenticated")
	ErrBadAuth   = errors.New("authentication failed")
	ErrStaleAuth = errors.New("timestamp outside the window")
)

func sum(key, signed []byte) [16]byte {
	m := hmac.New(sha256.New, key)
	m.Write(signed[:1])
	m.Write([]byte{0}) // TTL
	m.Write(signed[2:])
	return [16]byte(m.Sum(nil))
}

func sign(b, key []byte, now uint32) []byte {
	b = binary.BigEndian.AppendUint32(append(b, tlvAuth, 2+authLen), now)
	s := sum(key, b)
	return append(b, s[:]...)
}

// Verify checks the AUTH TLV against key, and that its time is within
// window seconds of now: a replay later than that fails here, one inside
// it is caught by the nonce (the daemon remembers the window's nonces).
func (m *Message) Verify(key []byte, now uint32, window uint32) error {
	if m.Auth == nil {
		return ErrNoAuth
	}
	if s := sum(key, m.Signed); !hmac.Equal(s[:], m.Auth.Sum[:]) {
		return ErrBadAuth
	}
	d := int64(now) - int64(m.Auth.Time)
	if d > int64(window) || -d > int64(window) {
		return ErrStaleAuth
	}
	return nil
}

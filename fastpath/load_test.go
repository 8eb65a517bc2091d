package fastpath

import (
	"encoding/binary"
	"testing"
)

// Both objects (bpfel for amd64, arm, mipsle; bpfeb for mips) get their
// map references pointed at the maps: every ld_imm64 the object relocates
// carries BPF_PSEUDO_MAP_FD in its source register (whose nibble of the
// register byte depends on the byte order) and the map's fd. Runs on any
// machine: no kernel involved.
func TestRelocationInBothByteOrders(t *testing.T) {
	for _, c := range []struct {
		name  string
		obj   []byte
		order binary.ByteOrder
	}{{"bpfel", objLE, binary.LittleEndian}, {"bpfeb", objBE, binary.BigEndian}} {
		p := &Program{order: c.order, cfgFD: 1001, countFD: 1002, denyFD: 1003, roamFD: 1004}
		insns, err := p.relocate(c.obj)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		fds := map[uint32]int{}
		for off := 0; off+16 <= len(insns); off += 8 {
			if insns[off] != 0x18 { // ld_imm64
				continue
			}
			src := insns[off+1] >> 4
			if c.order == binary.BigEndian {
				src = insns[off+1] & 0x0f
			}
			if src == 1 {
				fds[c.order.Uint32(insns[off+4:])]++
			}
			off += 8 // its second half
		}
		if fds[1001] == 0 || fds[1002] == 0 || fds[1003] == 0 || fds[1004] == 0 || len(fds) != 4 {
			t.Errorf("%s: map references %v, want fds 1001 (config), 1002 (counters), 1003 (deny) and 1004 (roamed)", c.name, fds)
		}
	}
}

package fastpath

import (
	"encoding/binary"
	"testing"

	"github.com/gluon-464xlat/gluon-464xlat/internal/bpfload"

	"golang.org/x/sys/unix"
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
		p := &Program{order: c.order, cfgFD: 1001, countFD: 1002, denyFD: 1003, roamFD: 1004, cl4FD: 1005, cl6FD: 1006}
		insns, err := p.relocate(c.obj)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		fds := bpfload.MapFDs(insns, c.order)
		for fd := 1001; fd <= 1006; fd++ {
			if fds[uint32(fd)] == 0 || len(fds) != 6 {
				t.Errorf("%s: map references %v, want fds 1001 (config), 1002 (counters), 1003 (deny), 1004 (roamed), 1005 and 1006 (the PLAT's clients)", c.name, fds)
				break
			}
		}
	}
}

// The verifier of a MIPS kernel (no efficient unaligned access: OpenWrt's
// ath79, ramips, lantiq, ...) refuses a packet access it cannot prove
// aligned for a packet whose IP header follows 2 bytes after a word
// boundary (NET_IP_ALIGN). BPF_F_STRICT_ALIGNMENT makes this machine's
// verifier check the same: the program must load so (it did not: "misaligned
// packet access off 2+(0x0; 0xff)+0+6 size 2", seen under qemu-system-mipsel
// with Debian's 6.1 4kc-malta kernel by make bench-mips).
func TestLoadsWithStrictAlignment(t *testing.T) {
	p := loadForTest(t)
	insns, err := p.relocate(objLE)
	if bpfload.Order == binary.BigEndian {
		insns, err = p.relocate(objBE)
	}
	if err != nil {
		t.Fatal(err)
	}
	fd, err := bpfload.ProgLoad(unix.BPF_PROG_TYPE_SCHED_CLS, filterName, insns, 4<<20, 1) // BPF_F_STRICT_ALIGNMENT
	if err != nil {
		t.Fatalf("the program does not load where packet accesses must be aligned (MIPS): %v", err)
	}
	unix.Close(fd)
}

// Package bpfload loads the project's BPF objects (clang's output for
// bpfel and bpfeb, committed) over the bpf(2) system call: maps by their
// sizes, a program section with its map references pointed at them, the
// verifier's reason when it refuses. Written by hand rather than with
// cilium/ebpf: the objects need maps, one relocation kind and a program
// load, and a node's flash pays for every kilobyte (docs/performance.md).
package bpfload

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Order is this machine's byte order: which object to load.
var Order binary.ByteOrder = nativeOrder()

func nativeOrder() binary.ByteOrder {
	x := uint16(1)
	if *(*byte)(unsafe.Pointer(&x)) == 1 {
		return binary.LittleEndian
	}
	return binary.BigEndian
}

// Syscall is bpf(2).
func Syscall(cmd int, attr unsafe.Pointer, size uintptr) (int, error) {
	r, _, e := unix.Syscall(unix.SYS_BPF, uintptr(cmd), uintptr(attr), size)
	if e != 0 {
		return int(r), e
	}
	return int(r), nil
}

// MapCreate is BPF_MAP_CREATE.
func MapCreate(typ, key, value, max, flags uint32) (int, error) {
	attr := [5]uint32{typ, key, value, max, flags}
	return Syscall(unix.BPF_MAP_CREATE, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
}

// MapSpec is a map to make and where its fd goes.
type MapSpec struct {
	FD                           *int
	Type, Key, Value, Max, Flags uint32
}

// MapsCreate makes the maps of specs in order; on an error, the ones made
// so far have their fds set (for the caller's Close).
func MapsCreate(specs ...MapSpec) error {
	for _, m := range specs {
		fd, err := MapCreate(m.Type, m.Key, m.Value, m.Max, m.Flags)
		if err != nil {
			return fmt.Errorf("BPF map: %w", err)
		}
		*m.FD = fd
	}
	return nil
}

// MapElem is BPF_MAP_LOOKUP_ELEM, BPF_MAP_UPDATE_ELEM (BPF_ANY) or (value
// nil) BPF_MAP_DELETE_ELEM.
func MapElem(cmd, fd int, key, value []byte) error {
	attr := struct {
		fd    uint32
		_     uint32
		key   uint64
		value uint64
		flags uint64
	}{fd: uint32(fd), key: uint64(uintptr(unsafe.Pointer(&key[0])))}
	if len(value) > 0 {
		attr.value = uint64(uintptr(unsafe.Pointer(&value[0])))
	}
	_, err := Syscall(cmd, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	runtime.KeepAlive(key)
	runtime.KeepAlive(value)
	return err
}

// MapKeys is every key of a hash map (BPF_MAP_GET_NEXT_KEY), each of
// size bytes.
func MapKeys(fd, size int) [][]byte {
	var keys [][]byte
	var prev []byte
	for {
		next := make([]byte, size)
		attr := struct {
			fd   uint32
			_    uint32
			key  uint64
			next uint64
		}{fd: uint32(fd), next: uint64(uintptr(unsafe.Pointer(&next[0])))}
		if prev != nil {
			attr.key = uint64(uintptr(unsafe.Pointer(&prev[0])))
		}
		_, err := Syscall(unix.BPF_MAP_GET_NEXT_KEY, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
		runtime.KeepAlive(prev)
		runtime.KeepAlive(next)
		if err != nil {
			return keys
		}
		keys = append(keys, next)
		prev = next
	}
}

// ProgLoad is BPF_PROG_LOAD of a program of typ; with logSize, a
// failure's error has what the verifier's log says. flags are
// prog_flags (the tests use BPF_F_STRICT_ALIGNMENT: the verifier then
// checks packet accesses as it does on MIPS, which has no efficient
// unaligned access).
func ProgLoad(typ uint32, name string, insns []byte, logSize int, flags uint32) (int, error) {
	license := []byte("GPL\x00")
	logBuf := make([]byte, max(logSize, 1))
	attr := struct {
		progType, insnCnt uint32
		insns, license    uint64
		logLevel, logSize uint32
		logBuf            uint64
		kernVersion       uint32
		progFlags         uint32
		name              [16]byte
	}{
		progType: typ, insnCnt: uint32(len(insns) / 8),
		insns: uint64(uintptr(unsafe.Pointer(&insns[0]))), license: uint64(uintptr(unsafe.Pointer(&license[0]))),
		progFlags: flags,
	}
	if logSize > 0 {
		attr.logLevel, attr.logSize, attr.logBuf = 1, uint32(logSize), uint64(uintptr(unsafe.Pointer(&logBuf[0])))
	}
	copy(attr.name[:15], name)
	// The verifier gives up with EAGAIN when a signal arrives while it
	// works (the Go runtime's preemption signals do, the longer it takes):
	// that is no answer about the program, so it is asked again.
	fd, err := Syscall(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	for i := 0; i < 20 && errors.Is(err, unix.EAGAIN); i++ {
		fd, err = Syscall(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	}
	runtime.KeepAlive(insns)
	runtime.KeepAlive(license)
	runtime.KeepAlive(logBuf)
	if err != nil {
		return -1, fmt.Errorf("BPF program: %w\n%s", err, verifierSays(string(bytes.TrimRight(logBuf, "\x00"))))
	}
	return fd, nil
}

// Load is ProgLoad that, when the kernel refuses, asks again with the
// verifier's log for the reason.
func Load(typ uint32, name string, insns []byte) (int, error) {
	fd, err := ProgLoad(typ, name, insns, 0, 0)
	if err == nil {
		return fd, nil
	}
	if fd, err2 := ProgLoad(typ, name, insns, 4<<20, 0); err2 == nil {
		unix.Close(fd) // (it loads now: the first error is the one to tell)
	} else {
		err = err2
	}
	return -1, err
}

// verifierSays is what a failure's log says: its messages (the lines
// that are not an instruction or a state, the reason among them, which
// need not be near the end) and its last lines.
func verifierSays(log string) string {
	lines := strings.Split(strings.TrimSpace(strings.ReplaceAll(log, "\x00", "")), "\n")
	var msgs []string
	for _, l := range lines {
		if l != "" && (l[0] < '0' || l[0] > '9') && l[0] != ' ' && l[0] != ';' && !strings.HasPrefix(l, "from ") {
			msgs = append(msgs, l)
		}
	}
	return strings.Join(msgs[max(0, len(msgs)-6):], "\n") + "\n...\n" + strings.Join(lines[max(0, len(lines)-4):], "\n")
}

// Relocate returns the instructions of the object's section with the map
// references (ld_imm64 against a symbol of its "maps" section) pointing at
// the maps fds names; order is the object's byte order.
func Relocate(obj []byte, order binary.ByteOrder, section string, fds map[string]int) ([]byte, error) {
	f, err := elf.NewFile(bytes.NewReader(obj))
	if err != nil {
		return nil, fmt.Errorf("BPF object: %w", err)
	}
	prog := f.Section(section)
	if prog == nil {
		return nil, fmt.Errorf("BPF object: no %s section", section)
	}
	insns, err := prog.Data()
	if err != nil {
		return nil, err
	}
	syms, err := f.Symbols()
	if err != nil {
		return nil, err
	}
	if rel := f.Section(".rel" + section); rel != nil {
		data, err := rel.Data()
		if err != nil {
			return nil, err
		}
		for i := 0; i+16 <= len(data); i += 16 {
			off := order.Uint64(data[i:])
			sym := int(order.Uint64(data[i+8:]) >> 32)
			if sym < 1 || sym > len(syms) || off+16 > uint64(len(insns)) || insns[off] != 0x18 {
				return nil, fmt.Errorf("BPF object: relocation at %d", off)
			}
			m, ok := fds[syms[sym-1].Name]
			if !ok {
				return nil, fmt.Errorf("BPF object: unknown map %q", syms[sym-1].Name)
			}
			// src_reg = BPF_PSEUDO_MAP_FD: the register byte's nibbles are
			// in the object's byte order
			if order == binary.LittleEndian {
				insns[off+1] = insns[off+1]&0x0f | unix.BPF_PSEUDO_MAP_FD<<4
			} else {
				insns[off+1] = insns[off+1]&0xf0 | unix.BPF_PSEUDO_MAP_FD
			}
			order.PutUint32(insns[off+4:], uint32(m))
		}
	}
	return insns, nil
}

// PossibleCPUs is the number of per-CPU slots a per-CPU map has.
func PossibleCPUs() int {
	b, err := os.ReadFile("/sys/devices/system/cpu/possible")
	if err != nil {
		return runtime.NumCPU()
	}
	n := 0
	for _, r := range strings.Split(strings.TrimSpace(string(b)), ",") {
		lo, hi, found := strings.Cut(r, "-")
		a, _ := strconv.Atoi(lo)
		z := a
		if found {
			z, _ = strconv.Atoi(hi)
		}
		n += z - a + 1
	}
	return max(n, 1)
}

// PerCPUSum reads slot key of a per-CPU array of uint64s, summed.
func PerCPUSum(fd, ncpu int, key uint32) (uint64, bool) {
	val := make([]byte, 8*ncpu)
	if MapElem(unix.BPF_MAP_LOOKUP_ELEM, fd, binary.NativeEndian.AppendUint32(nil, key), val) != nil {
		return 0, false
	}
	var sum uint64
	for c := 0; c < ncpu; c++ {
		sum += Order.Uint64(val[8*c:])
	}
	return sum, true
}

// MapFDs counts the map references in relocated instructions by fd: each
// ld_imm64 with BPF_PSEUDO_MAP_FD in its source register (whose nibble of
// the register byte depends on the byte order). For checking Relocate.
func MapFDs(insns []byte, order binary.ByteOrder) map[uint32]int {
	fds := map[uint32]int{}
	for off := 0; off+16 <= len(insns); off += 8 {
		if insns[off] != 0x18 { // ld_imm64
			continue
		}
		src := insns[off+1] >> 4
		if order == binary.BigEndian {
			src = insns[off+1] & 0x0f
		}
		if src == unix.BPF_PSEUDO_MAP_FD {
			fds[order.Uint32(insns[off+4:])]++
		}
		off += 8 // its second half
	}
	return fds
}

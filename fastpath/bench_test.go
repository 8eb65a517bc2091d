package fastpath

import (
	"encoding/binary"
	"slices"
	"testing"

	"github.com/gluon-464xlat/gluon-464xlat/header"
)

// BenchmarkInKernel runs the program in the kernel on the common packets
// (BPF_PROG_TEST_RUN, b.N runs of one: a run translates the packet in
// place, so a repeated run would see its own result) and reports the
// kernel's own time per packet (the median run), kernel-ns/pkt: with the JIT, or with the
// interpreter where bpf_jit_enable is 0 (32-bit MIPS before Linux 5.16
// has no other; make bench-mips runs this under qemu both ways). "ARP",
// a frame the program leaves at once, is the timing's own cost.
func BenchmarkInKernel(b *testing.B) {
	c6, r6 := in6(clat, client), in6(plat, remote)
	for _, bc := range []struct {
		name string
		pkt  []byte
	}{
		{"4to6-UDP-64", ipv4(client, remote, header.ProtoUDP, 64, 0, false, l4(header.ProtoUDP, client, remote, 0, make([]byte, 36)))},
		{"6to4-UDP-64", ipv6(r6, c6, header.ProtoUDP, 64, 0, l4(header.ProtoUDP, r6, c6, 0, make([]byte, 16)))},
		{"4to6-TCP-1400", ipv4(client, remote, header.ProtoTCP, 64, 0, true, l4(header.ProtoTCP, client, remote, 0x10, make([]byte, 1360)))},
		{"6to4-TCP-ACK", ipv6(r6, c6, header.ProtoTCP, 64, 0, l4(header.ProtoTCP, r6, c6, 0x10, nil))},
		{"ARP", make([]byte, 28)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			p := loadForTest(b)
			pkt, want := frame(bc.pkt), uint32(actRedirect)
			if v := bc.pkt[0] >> 4; v != 4 && v != 6 {
				binary.BigEndian.PutUint16(pkt[12:], 0x0806)
				want = actOK
			}
			runs := make([]uint32, b.N)
			for i := range runs {
				v, _, ns, err := p.testRunTimed(0, pkt, 0)
				if err != nil || v != want {
					b.Fatalf("verdict %d, %v: want %d", v, err, want)
				}
				runs[i] = ns
			}
			// the median: a timer interrupt in one run is not the program's
			slices.Sort(runs)
			b.ReportMetric(float64(runs[len(runs)/2]), "kernel-ns/pkt")
		})
	}
}

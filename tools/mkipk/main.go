// Command mkipk writes the .ipk packages of one OpenWrt architecture from
// nfpm configurations (packages/*/nfpm.yaml), without the OpenWrt SDK:
//
//	mkipk -arch mips_24kc -version 0.1.0-r42 -bin dist/mips_24kc/gluon-464xlat -out dist/ipk CONFIG...
//
// nfpm (github.com/goreleaser/nfpm) does the packing, in the form OpenWrt's
// ipkg-build writes and opkg reads: an outer tar.gz holding debian-binary,
// control.tar.gz and data.tar.gz. This tool only fills in ARCH, VERSION
// and BIN and names the files. It is a module of its own so that nfpm's
// dependencies stay out of the daemons' go.mod.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/ipk"
)

func main() {
	arch := flag.String("arch", "", "OpenWrt architecture, e.g. mips_24kc (required)")
	version := flag.String("version", "", "package version, e.g. 0.1.0-r42 (required)")
	bin := flag.String("bin", "", "the gluon-464xlat binary built for -arch (required)")
	out := flag.String("out", "dist/ipk", "output directory")
	flag.Parse()
	if *arch == "" || *version == "" || *bin == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "mkipk: -arch, -version, -bin and at least one nfpm config are required")
		os.Exit(2)
	}
	vars := map[string]string{"ARCH": *arch, "VERSION": *version, "BIN": *bin}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fail(err)
	}
	for _, conf := range flag.Args() {
		c, err := nfpm.ParseFileWithEnvMapping(conf, func(k string) string { return vars[k] })
		if err != nil {
			fail(fmt.Errorf("%s: %w", conf, err))
		}
		info, err := c.Get("ipk")
		if err != nil {
			fail(fmt.Errorf("%s: %w", conf, err))
		}
		info = nfpm.WithDefaults(info)
		if err := nfpm.Validate(info); err != nil {
			fail(fmt.Errorf("%s: %w", conf, err))
		}
		path := filepath.Join(*out, ipk.Default.ConventionalFileName(info))
		f, err := os.Create(path)
		if err != nil {
			fail(err)
		}
		if err := ipk.Default.Package(info, f); err != nil {
			fail(fmt.Errorf("%s: %w", conf, err))
		}
		if err := f.Close(); err != nil {
			fail(err)
		}
		fmt.Println(path)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "mkipk:", err)
	os.Exit(1)
}

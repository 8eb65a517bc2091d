package packages

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// What make ipk must put in each package (DESIGN.md section 5 targets).
var ipkArch = map[string]struct {
	machine elf.Machine
	order   binary.ByteOrder
}{
	"mips_24kc":                {elf.EM_MIPS, binary.BigEndian},
	"mipsel_24kc":              {elf.EM_MIPS, binary.LittleEndian},
	"arm_cortex-a7_neon-vfpv4": {elf.EM_ARM, binary.LittleEndian},
	"aarch64_cortex-a53":       {elf.EM_AARCH64, binary.LittleEndian},
	"x86_64":                   {elf.EM_X86_64, binary.LittleEndian},
}

var ipkFiles = map[string]map[string]string{ // package -> path -> kind
	"gluon-464xlat": {
		"./usr/sbin/gluon-464xlat": "elf", "./usr/sbin/clatd": "link", "./usr/sbin/prefixd": "link", "./usr/sbin/l3roamd": "link", "./usr/sbin/xlatctl": "link",
		"./etc/init.d/clatd": "exec", "./etc/init.d/prefixd": "exec", "./etc/init.d/l3roamd": "exec",
		"./etc/config/clatd": "conf", "./etc/config/prefixd": "conf", "./etc/config/l3roamd": "conf",
		"./etc/sysctl.d/50-gluon-464xlat.conf": "file",
	},
	"gluon-464xlat-plat-daemon": {
		"./usr/sbin/platd": "link", "./etc/init.d/platd": "exec", "./etc/config/platd": "conf",
	},
}

// members reads an ipk's outer archive: the tar.gz OpenWrt's ipkg-build
// writes, or the ar archive of older opkg and Debian.
func members(t *testing.T, b []byte) map[string][]byte {
	m := map[string][]byte{}
	if bytes.HasPrefix(b, []byte("!<arch>\n")) {
		for p := b[8:]; len(p) >= 60; {
			name := strings.TrimRight(strings.TrimSpace(string(p[:16])), "/")
			var size int
			for _, c := range strings.TrimSpace(string(p[48:58])) {
				size = size*10 + int(c-'0')
			}
			m[name] = p[60 : 60+size]
			p = p[60+size+size%2:]
		}
		return m
	}
	for name, h := range untar(t, b) {
		m[strings.TrimPrefix(name, "./")] = h.data
	}
	return m
}

type entry struct {
	hdr  *tar.Header
	data []byte
}

func untar(t *testing.T, gz []byte) map[string]entry {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatalf("not gzip: %v", err)
	}
	tr := tar.NewReader(zr)
	out := map[string]entry{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("tar: %v", err)
		}
		data, _ := io.ReadAll(tr)
		out[h.Name] = entry{h, data}
	}
}

func TestIPKsHoldTheDaemonsForTheirArchitecture(t *testing.T) {
	dir := os.Getenv("XLAT_IPK_DIR")
	if dir == "" {
		t.Skip("run by make test-ipk, after make ipk")
	}
	seen := 0
	for arch, want := range ipkArch {
		for pkg, files := range ipkFiles {
			matches, _ := filepath.Glob(filepath.Join(dir, pkg+"_*_"+arch+".ipk"))
			if len(matches) != 1 {
				t.Errorf("%s for %s: %d files", pkg, arch, len(matches))
				continue
			}
			seen++
			raw, _ := os.ReadFile(matches[0])
			m := members(t, raw)
			if string(m["debian-binary"]) != "2.0\n" {
				t.Errorf("%s: debian-binary %q", matches[0], m["debian-binary"])
			}
			control := untar(t, m["control.tar.gz"])
			fields := map[string]string{}
			for _, line := range strings.Split(string(control["./control"].data), "\n") {
				if k, v, ok := strings.Cut(line, ": "); ok && !strings.HasPrefix(line, " ") {
					fields[k] = v
				}
			}
			version := regexp.MustCompile(`^\d+\.\d+\.\d+-r\d+$`)
			if fields["Package"] != pkg || fields["Architecture"] != arch || !version.MatchString(fields["Version"]) ||
				fields["Maintainer"] == "" || fields["Description"] == "" || fields["License"] != "BSD-2-Clause" {
				t.Errorf("%s: control fields %v", matches[0], fields)
			}
			ipkDependsExist(t, matches[0], fields["Depends"])
			if pkg == "gluon-464xlat" && !strings.Contains(fields["Depends"], "kmod-tun") {
				t.Errorf("%s: Depends %q", matches[0], fields["Depends"])
			}
			if pkg != "gluon-464xlat" && !strings.Contains(fields["Depends"], "gluon-464xlat (= "+fields["Version"]+")") {
				t.Errorf("%s: Depends %q", matches[0], fields["Depends"])
			}
			for _, s := range []string{"./postinst", "./prerm"} {
				if e, ok := control[s]; !ok || e.hdr.Mode&0o111 == 0 {
					t.Errorf("%s: %s missing or not executable", matches[0], s)
				}
			}
			data := untar(t, m["data.tar.gz"])
			conffiles := string(control["./conffiles"].data)
			for path, kind := range files {
				e, ok := data[path]
				if !ok {
					t.Errorf("%s: no %s", matches[0], path)
					continue
				}
				switch kind {
				case "elf":
					f, err := elf.NewFile(bytes.NewReader(e.data))
					if err != nil || f.Machine != want.machine || f.ByteOrder != want.order || f.Type != elf.ET_EXEC || e.hdr.Mode&0o111 == 0 {
						t.Errorf("%s: %s is not an executable for %s (%v)", matches[0], path, arch, err)
					}
				case "link":
					if e.hdr.Typeflag != tar.TypeSymlink || e.hdr.Linkname != "gluon-464xlat" {
						t.Errorf("%s: %s is not a link to gluon-464xlat", matches[0], path)
					}
				case "exec":
					if e.hdr.Mode&0o111 == 0 || !bytes.HasPrefix(e.data, []byte("#!/bin/sh /etc/rc.common")) {
						t.Errorf("%s: %s is not an executable init script", matches[0], path)
					}
				case "conf":
					if !strings.Contains(conffiles, strings.TrimPrefix(path, ".")+"\n") {
						t.Errorf("%s: %s not in conffiles %q", matches[0], path, conffiles)
					}
				}
			}
		}
	}
	if seen != len(ipkArch)*len(ipkFiles) {
		t.Errorf("%d packages, want %d", seen, len(ipkArch)*len(ipkFiles))
	}
}

package packages

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// The packages this repository builds: a dependency on one of them is ours.
var ownPackages = []string{"gluon-464xlat", "gluon-464xlat-plat-daemon", "gluon-464xlat-clat", "gluon-464xlat-plat"}

// releaseNames reads the package names a release has (testdata/openwrt-packages).
func releaseNames(t *testing.T, files ...string) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for _, n := range ownPackages {
		names[n] = true
	}
	for _, f := range files {
		fh, err := os.Open(filepath.Join("testdata/openwrt-packages", f))
		if err != nil {
			t.Fatal(err)
		}
		s := bufio.NewScanner(fh)
		for s.Scan() {
			if l := strings.TrimSpace(s.Text()); l != "" && !strings.HasPrefix(l, "#") {
				names[l] = true
			}
		}
		fh.Close()
	}
	return names
}

// OpenWrt releases the OpenWrt package must install on, and Gluon's for the Gluon packages.
func openwrtReleases(t *testing.T) map[string]map[string]bool {
	return map[string]map[string]bool{
		"OpenWrt 23.05": releaseNames(t, "feeds-23.05.txt", "core-23.05.txt"),
		"OpenWrt 24.10": releaseNames(t, "feeds-24.10.txt", "core-24.10.txt"),
	}
}

// makefileDepends returns each package's DEPENDS from an OpenWrt package
// Makefile (define Package/<name> ... DEPENDS:= ... endef), as the names
// a selected package pulls in: '+name', with conditions ('@...',
// '$(...)', 'COND:') dropped.
func makefileDepends(t *testing.T, path string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	deps := map[string][]string{}
	block := regexp.MustCompile(`(?ms)^define Package/([a-z0-9-]+)\n(.*?)^endef`)
	for _, m := range block.FindAllStringSubmatch(text, -1) {
		for _, line := range strings.Split(m[2], "\n") {
			line = strings.TrimSpace(line)
			if !strings.HasPrefix(line, "DEPENDS:=") && !strings.HasPrefix(line, "DEPENDS+=") {
				continue
			}
			for _, w := range strings.Fields(line[len("DEPENDS:="):]) {
				if !strings.HasPrefix(w, "+") {
					continue // @conditions and $(GO_ARCH_DEPENDS)
				}
				w = strings.TrimPrefix(w, "+")
				if i := strings.LastIndex(w, ":"); i >= 0 {
					w = w[i+1:] // +COND:name
				}
				deps[m[1]] = append(deps[m[1]], w)
			}
		}
	}
	return deps
}

// TestPackageDependsExistInOpenWrtReleases: every package the OpenWrt
// package depends on exists in OpenWrt 23.05 and 24.10 (a missing name,
// like kmod-nf-conntrack6 in 24.10, fails the image build).
func TestPackageDependsExistInOpenWrtReleases(t *testing.T) {
	deps := makefileDepends(t, "gluon-464xlat/Makefile")
	if len(deps["gluon-464xlat"]) == 0 || len(deps["gluon-464xlat-plat-daemon"]) == 0 {
		t.Fatalf("no DEPENDS parsed: %v", deps)
	}
	for release, names := range openwrtReleases(t) {
		for pkg, ds := range deps {
			for _, d := range ds {
				if !names[d] {
					t.Errorf("%s: %s depends on %s, which %s does not have", "gluon-464xlat/Makefile", pkg, d, release)
				}
			}
		}
	}
}

// TestGluonPackageDependsExistInGluon: the Gluon packages' dependencies
// exist in Gluon v2023.2.6 (its packages, its feeds, OpenWrt 23.05).
func TestGluonPackageDependsExistInGluon(t *testing.T) {
	names := releaseNames(t, "gluon-v2023.2.6.txt", "feeds-23.05.txt", "core-23.05.txt")
	for _, mk := range []string{"gluon-464xlat-clat/Makefile", "gluon-464xlat-plat/Makefile"} {
		deps := makefileDepends(t, mk)
		if len(deps) == 0 {
			t.Fatalf("%s: no DEPENDS parsed", mk)
		}
		for pkg, ds := range deps {
			for _, d := range ds {
				if !names[d] {
					t.Errorf("%s: %s depends on %s, which Gluon v2023.2.6 does not have", mk, pkg, d)
				}
			}
		}
	}
}

// TestNfpmDependsMatchMakefile: make ipk's packages (nfpm) and the feed's
// packages (golang-package.mk) pull in the same packages.
func TestNfpmDependsMatchMakefile(t *testing.T) {
	deps := makefileDepends(t, "gluon-464xlat/Makefile")
	for pkg, file := range map[string]string{"gluon-464xlat": "gluon-464xlat/nfpm.yaml", "gluon-464xlat-plat-daemon": "gluon-464xlat/nfpm-plat.yaml"} {
		got := nfpmList(t, file, "depends")
		want := append([]string(nil), deps[pkg]...)
		sort.Strings(got)
		sort.Strings(want)
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s depends %v, the Makefile's %s %v", file, got, pkg, want)
		}
	}
}

// nfpmList reads the names of a top-level list (depends:, conflicts:) of an
// nfpm config, without version constraints or comments.
func nfpmList(t *testing.T, file, key string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, key+":"):
			in = true
		case in && strings.HasPrefix(line, "  - "):
			out = append(out, strings.Fields(strings.TrimPrefix(line, "  - "))[0])
		case in:
			in = false
		}
	}
	return out
}

// ipkDependsExist checks an .ipk's Depends: against both releases.
func ipkDependsExist(t *testing.T, ipk, depends string) {
	for release, names := range openwrtReleases(t) {
		for _, d := range strings.Split(depends, ",") {
			if f := strings.Fields(d); len(f) > 0 && !names[f[0]] {
				t.Errorf("%s: Depends %s, which %s does not have", ipk, f[0], release)
			}
		}
	}
}

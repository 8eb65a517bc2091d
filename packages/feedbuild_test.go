package packages

import (
	"debug/buildinfo"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// The Go of the OpenWrt packages feed: 1.21.13 in 23.05 (what Gluon
// v2023.2.x builds with), 1.23.12 in 24.10; "local" is this machine's.
var feedGoVersions = []string{"go1.21.13", "go1.23.12", "local"}

// feedBuild runs packages/gluon-464xlat/Makefile through the real
// golang-package.mk (pinned openwrt/packages, lab/upstream/PINS) in the
// stand-in build root of testdata/buildroot, for mips_24kc with the Go
// toolchain goVersion, and returns make's output and the directory the
// packages were installed into.
func feedBuild(t *testing.T, goVersion string, makeArgs ...string) (string, string, error) {
	t.Helper()
	work := t.TempDir()
	top := filepath.Join(work, "top")
	// stdout only: the go command says "go: downloading go1.23.12" on
	// stderr when it fetches a toolchain first, which must not become part
	// of the GOROOT (the PATH entry made of it found no go, and the
	// machine's own go built the package: seen in CI on a fresh machine)
	run := func(env []string, name string, args ...string) string {
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), env...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s%s", name, args, err, out, stderr.String())
		}
		return strings.TrimSpace(string(out))
	}
	run(nil, "cp", "-a", "testdata/buildroot/.", top)
	run(nil, "bash", "../lab/upstream/fetch.sh", "openwrt-packages-golang", filepath.Join(top, "feeds", "packages"))
	// The modules this machine's go already has; golang-package.mk keeps them in $(DL_DIR).
	os.MkdirAll(filepath.Join(work, "dl"), 0o755)
	os.Symlink(run(nil, "go", "env", "GOMODCACHE"), filepath.Join(work, "dl", "go-mod-cache"))
	goroot := run([]string{"GOTOOLCHAIN=" + goVersion}, "go", "env", "GOROOT")
	// Debian's mips-linux-gnu glibc has headers for the hard-float ABI only;
	// cgo's C (runtime/cgo) is compiled with -msoft-float for GOMIPS=softfloat.
	stub := filepath.Join(work, "softfloat-stub")
	os.MkdirAll(filepath.Join(stub, "gnu"), 0o755)
	os.WriteFile(filepath.Join(stub, "gnu", "stubs-o32_soft.h"), nil, 0o644)
	args := append([]string{"-C", "gluon-464xlat", "TOPDIR=" + top, "WORK=" + work, "ARCH=mips",
		"TARGET_CROSS=mips-linux-gnu-", "TARGET_CPPFLAGS_EXTRA=-I" + stub}, makeArgs...)
	cmd := exec.Command("make", append(args, "feedbuild")...)
	cmd.Env = append(os.Environ(), "PATH="+filepath.Join(goroot, "bin")+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	return string(out), filepath.Join(work, "ipkg"), err
}

func needFeedBuild(t *testing.T) {
	if os.Getenv("XLAT_FEED_BUILD") == "" {
		t.Skip("set XLAT_FEED_BUILD=1 (make test-feed)")
	}
	for _, tool := range []string{"make", "mips-linux-gnu-gcc", "qemu-mips-static"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (make deps)", tool)
		}
	}
}

// TestFeedBuildsWithOpenWrtGo: the OpenWrt package builds as
// golang-package.mk builds it (GOTOOLCHAIN=local, CGO_ENABLED=1,
// -linkmode external, GO_PKG_BUILD_PKG, GO_PKG_LDFLAGS_X) with the Go of
// OpenWrt 23.05 and 24.10 and this machine's, for mips_24kc, and installs
// a binary of that Go that runs.
func TestFeedBuildsWithOpenWrtGo(t *testing.T) {
	needFeedBuild(t)
	for _, v := range feedGoVersions {
		t.Run(v, func(t *testing.T) {
			out, ipkg, err := feedBuild(t, v)
			if err != nil {
				t.Fatalf("make feedbuild: %v\n%s", err, tail(out, 40))
			}
			bin := filepath.Join(ipkg, "gluon-464xlat", "usr", "sbin", "gluon-464xlat")
			f, err := elf.Open(bin)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Machine != elf.EM_MIPS || f.ByteOrder.String() != "BigEndian" {
				t.Errorf("%s: %v %v, want big-endian MIPS", bin, f.Machine, f.ByteOrder)
			}
			interp := false
			for _, p := range f.Progs {
				interp = interp || p.Type == elf.PT_INTERP
			}
			if !interp {
				t.Errorf("%s is statically linked: -linkmode external with cgo makes a dynamic binary", bin)
			}
			bi, err := buildinfo.ReadFile(bin)
			if err != nil {
				t.Fatal(err)
			}
			want := v
			if v == "local" {
				want = runtime.Version()
				if o, err := exec.Command("go", "env", "GOVERSION").Output(); err == nil {
					want = strings.TrimSpace(string(o))
				}
			}
			if bi.GoVersion != want {
				t.Errorf("built with %s, want %s", bi.GoVersion, want)
			}
			for _, s := range []string{"clatd", "prefixd", "l3roamd", "xlatctl"} {
				if l, err := os.Readlink(filepath.Join(filepath.Dir(bin), s)); err != nil || l != "gluon-464xlat" {
					t.Errorf("/usr/sbin/%s: %q %v", s, l, err)
				}
			}
			if l, err := os.Readlink(filepath.Join(ipkg, "gluon-464xlat-plat-daemon", "usr", "sbin", "platd")); err != nil || l != "gluon-464xlat" {
				t.Errorf("/usr/sbin/platd: %q %v", l, err)
			}
			// GO_PKG_LDFLAGS_X reached the binary, and it runs (glibc's loader from Debian's cross libc).
			ver, err := exec.Command("qemu-mips-static", "-L", "/usr/mips-linux-gnu", filepath.Join(filepath.Dir(bin), "clatd"), "-version").CombinedOutput()
			if err != nil || strings.TrimSpace(string(ver)) != "clatd 0.1.0-1" {
				t.Errorf("clatd -version under qemu-mips-static: %q %v", ver, err)
			}
		})
	}
}

// TestFeedBuildFailsWithoutAPackageDirectory: a source directory missing
// from Build/Prepare's copy (intercom was, once) fails the build.
func TestFeedBuildFailsWithoutAPackageDirectory(t *testing.T) {
	needFeedBuild(t)
	out, _, err := feedBuild(t, "local", "GLUON_464XLAT_SRC=go.mod go.sum LICENSE cmd daemon header internal siit tun")
	if err == nil {
		t.Fatalf("built without intercom:\n%s", tail(out, 20))
	}
	if !strings.Contains(out, "gluon-464xlat/intercom") {
		t.Errorf("the failure does not name intercom:\n%s", tail(out, 20))
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

package ctlsock

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// Every daemon's socket answers "memory" with the runtime's numbers, and a
// bad command with an error reply, staying up.
func TestMemoryAndErrorReplies(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.sock")
	s, err := Listen(path, map[string]Handler{"status": func([]string) (any, error) { return "fine", nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := Query(path, "memory")
	if err != nil {
		t.Fatal(err)
	}
	var m Memory
	if err := json.Unmarshal([]byte(out), &m); err != nil || m.Sys == 0 || m.HeapInuse == 0 || m.Goroutines == 0 {
		t.Errorf("memory: %q %v", out, err)
	}
	if out, _ := Query(path, "nonsense x"); !strings.HasPrefix(out, "error: unknown command") {
		t.Errorf("bad command: %q", out)
	}
	if out, _ := Query(path, "status"); out != "fine" {
		t.Errorf("after a bad command: %q", out)
	}
	if out, _ := Query(path, "help"); out != "help memory status" {
		t.Errorf("help: %q", out)
	}
}

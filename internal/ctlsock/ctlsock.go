// Package ctlsock serves a daemon's control socket: a unix stream socket that
// takes one text command per line and answers each with one line, plain text
// or JSON, like the C l3roamd's socket (so `echo status | uc path` and
// `xlatctl DAEMON status` work on a node, `nc -U` on a PC).
package ctlsock

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"time"
)

// Handler runs one command. A string result is sent as it is; anything else
// as JSON. An error becomes "error: ..." and the daemon carries on.
type Handler func(args []string) (any, error)

// Server is a listening control socket.
type Server struct {
	path string
	ln   net.Listener
	cmds map[string]Handler
	wg   sync.WaitGroup
}

// maxLine bounds a command line so a client cannot make the daemon buffer
// without end.
const maxLine = 4096

// Listen opens the socket at path. A leftover socket file from a crashed run
// is removed only if nobody answers on it.
func Listen(path string, cmds map[string]Handler) (*Server, error) {
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return nil, fmt.Errorf("%s: another daemon is listening there", path)
	}
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	os.Chmod(path, 0o660)
	s := &Server{path: path, ln: ln, cmds: cmds}
	if _, ok := cmds["help"]; !ok {
		cmds["help"] = func([]string) (any, error) {
			names := make([]string, 0, len(cmds))
			for n := range cmds {
				names = append(names, n)
			}
			sort.Strings(names)
			return strings.Join(names, " "), nil
		}
	}
	if _, ok := cmds["memory"]; !ok {
		cmds["memory"] = func([]string) (any, error) { return ReadMemory(), nil }
	}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// Memory is what the Go runtime holds, the reply of every daemon's
// "memory" command: on a 64 MB router the number to watch beside RSS.
type Memory struct {
	HeapInuse  uint64 `json:"heap_inuse_bytes"`
	HeapSys    uint64 `json:"heap_sys_bytes"`
	Sys        uint64 `json:"sys_bytes"` // everything the runtime obtained from the kernel
	NumGC      uint32 `json:"num_gc"`
	Goroutines int    `json:"goroutines"`
	GOGC       string `json:"gogc"`
	MemLimit   int64  `json:"gomemlimit_bytes"`
}

// ReadMemory reads the runtime's memory statistics.
func ReadMemory() Memory {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return Memory{HeapInuse: m.HeapInuse, HeapSys: m.HeapSys, Sys: m.Sys, NumGC: m.NumGC,
		Goroutines: runtime.NumGoroutine(), GOGC: os.Getenv("GOGC"), MemLimit: debug.SetMemoryLimit(-1)}
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				slog.Warn("control socket accept", "err", err)
			}
			return
		}
		go s.handle(c)
	}
}

func (s *Server) handle(c net.Conn) {
	defer c.Close()
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 512), maxLine)
	for sc.Scan() {
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprintln(c, s.Run(sc.Text())); err != nil {
			return
		}
	}
	if errors.Is(sc.Err(), bufio.ErrTooLong) {
		fmt.Fprintln(c, "error: command line too long")
	}
}

// Run executes one command line and returns the reply line.
func (s *Server) Run(line string) string {
	f := strings.Fields(line)
	if len(f) == 0 {
		return "error: empty command"
	}
	h, ok := s.cmds[f[0]]
	if !ok {
		return fmt.Sprintf("error: unknown command %q (try help)", f[0])
	}
	v, err := safeCall(h, f[1:])
	if err != nil {
		return "error: " + strings.ReplaceAll(err.Error(), "\n", " ")
	}
	if str, ok := v.(string); ok {
		return str
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "error: " + err.Error()
	}
	return string(b)
}

// safeCall keeps a bug in one handler from taking the daemon down.
func safeCall(h Handler, args []string) (v any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error: %v", r)
		}
	}()
	return h(args)
}

// Close stops listening and removes the socket file.
func (s *Server) Close() error {
	err := s.ln.Close()
	s.wg.Wait()
	os.Remove(s.path)
	return err
}

// Query sends one command to the socket at path and returns the reply line.
func Query(path, line string) (string, error) {
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintln(c, line); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	s, err := r.ReadString('\n')
	return strings.TrimSuffix(s, "\n"), err
}

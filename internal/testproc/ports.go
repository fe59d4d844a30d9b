package testproc

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// Ports handed out by FreePort are drawn at random from this range, which
// lies below Linux's default ephemeral range (32768-60999): a port the kernel
// picks for some outgoing connection can then not steal one we reserved
// between probing it and the server binding it.
const (
	portMin = 20000
	portMax = 32000 // exclusive
)

// FreePort returns a TCP port on 127.0.0.1 that is free right now and
// reserved for t: until t's cleanup runs, no other FreePort caller, in this
// or in any other test process on the machine, gets it. (The reservation is
// a flock on a file in os.TempDir()/sett-testproc-ports; it also ends when the
// process exits.)
func FreePort(t testing.TB) int {
	t.Helper()
	dir := filepath.Join(os.TempDir(), "sett-testproc-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		t.Fatalf("testproc.FreePort: %v", err)
	}
	for range 1000 {
		port := portMin + rand.IntN(portMax-portMin)
		unlock, ok := tryLockFile(filepath.Join(dir, strconv.Itoa(port)))
		if !ok {
			continue
		}
		if !portBindable(port) {
			unlock()
			continue
		}
		t.Cleanup(unlock)
		return port
	}
	t.Fatalf("testproc.FreePort: no free port found in [%d,%d)", portMin, portMax)
	return 0
}

// FreePorts returns n distinct ports as FreePort does.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		ports[i] = FreePort(t)
	}
	return ports
}

func portBindable(port int) bool {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

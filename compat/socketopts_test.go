package compat

import (
	"context"
	"fmt"
	"net"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sett-dev/sett/internal/testproc"
)

// bindReusePort reports whether a second SO_REUSEPORT socket can bind addr.
func bindReusePort(addr string) bool {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	l, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// TestSocketReusePort: with --socket-reuse-port the client and peer ports
// can be bound again by another SO_REUSEPORT socket; without it they
// cannot; on etcd and sett alike.
func TestSocketReusePort(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and sett")
	}
	for _, flags := range [][]string{{"--socket-reuse-port"}, nil, {"--socket-reuse-address", "--socket-reuse-port=false"}} {
		got := map[string][2]bool{}
		for _, kind := range []string{"etcd", "sett"} {
			opts := testproc.Options{ExtraArgs: append([]string{"--log-level=error"}, flags...)}
			p := startKind(t, kind, opts)
			got[kind] = [2]bool{bindReusePort(p.ClientAddr()), bindReusePort(fmt.Sprintf("%s:%d", p.Host, p.PeerPort))}
			p.Stop()
		}
		if got["etcd"] != got["sett"] {
			t.Errorf("%v: client and peer ports rebindable: etcd %v, sett %v", flags, got["etcd"], got["sett"])
		}
		if want := len(flags) == 1; got["sett"] != [2]bool{want, want} {
			t.Errorf("%v: client and peer ports rebindable %v, want %v", flags, got["sett"], want)
		}
	}
}

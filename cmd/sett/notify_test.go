package main

import (
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sett-dev/sett/internal/testproc"
)

// listenNotify is a fake systemd notification socket.
func listenNotify(t *testing.T) (string, *net.UnixConn) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return path, c
}

func TestSdNotify(t *testing.T) {
	if err := sdNotify(func(string) string { return "" }, "READY=1"); !errors.Is(err, errNoNotifySocket) {
		t.Fatalf("unset NOTIFY_SOCKET: %v", err)
	}
	path, c := listenNotify(t)
	if err := sdNotify(func(string) string { return path }, "READY=1"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "READY=1" {
		t.Fatalf("got %q %v", buf[:n], err)
	}
}

// sett and etcd under a fake systemd both send READY=1, after they log
// that they serve clients.
func TestReadyNotifyLikeEtcd(t *testing.T) {
	for _, kind := range []string{"etcd", "sett"} {
		path, c := listenNotify(t)
		opts := testproc.Options{Env: []string{"NOTIFY_SOCKET=" + path}}
		var p *testproc.Proc
		if kind == "etcd" {
			p = testproc.StartEtcd(t, opts)
		} else {
			p = testproc.StartSett(t, opts)
		}
		buf := make([]byte, 64)
		c.SetReadDeadline(time.Now().Add(15 * time.Second))
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != "READY=1" {
			t.Fatalf("%s: notification %q %v", kind, buf[:n], err)
		}
		waitFor(p.LogPath, "successfully notified init daemon", 5*time.Second)
		logs := waitFor(p.LogPath, "ready to serve client requests", 5*time.Second)
		if !strings.Contains(logs, "ready to serve client requests") || !strings.Contains(logs, "successfully notified init daemon") {
			t.Errorf("%s: readiness lines missing:\n%s", kind, logs)
		}
		p.Stop()
	}
}

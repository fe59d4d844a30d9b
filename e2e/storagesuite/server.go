// Package storagesuite runs k8s.io/apiserver's generic storage test suite
// (pkg/storage/testing, as driven by pkg/storage/etcd3's own tests) against
// a sett server, or against real etcd for comparison.
package storagesuite

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// TargetEnv selects the server binary the suite runs against: "sett"
// (the default) or "etcd".
const TargetEnv = "SETT_STORAGE_SUITE_TARGET"

// Target returns the server the suite runs against.
func Target() (string, error) {
	switch v := os.Getenv(TargetEnv); v {
	case "", "sett":
		return "sett", nil
	case "etcd":
		return "etcd", nil
	default:
		return "", fmt.Errorf("%s=%q: want sett or etcd", TargetEnv, v)
	}
}

// ServerOptions are the per-test knobs of a server, mirroring the embedded
// etcd configuration the etcd3 package's tests change.
type ServerOptions struct {
	// WatchProgressNotifyInterval is --watch-progress-notify-interval;
	// zero keeps the server's default (10 minutes, as embedded etcd).
	WatchProgressNotifyInterval time.Duration
}

// Server is one running single-member server with its own data directory.
type Server struct {
	Endpoint string
	cmd      *exec.Cmd
	logPath  string
	exited   chan struct{}
}

// binaries builds each server binary at most once per test process.
var binaries sync.Map // target name -> *binaryOnce

type binaryOnce struct {
	once sync.Once
	path string
	err  error
}

// repoRoot is the sett repository: this package lives in <root>/e2e/storagesuite.
func repoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	return filepath.Dir(filepath.Dir(wd)), nil
}

// Binary returns the path of bin/<target>, building it with make first
// (make build for sett, make bin/etcd for etcd; both are no-ops when fresh).
func Binary(target string) (string, error) {
	v, _ := binaries.LoadOrStore(target, &binaryOnce{})
	b := v.(*binaryOnce)
	b.once.Do(func() {
		root, err := repoRoot()
		if err != nil {
			b.err = err
			return
		}
		goal := "bin/" + target
		if target == "sett" {
			goal = "build"
		}
		out, err := exec.Command("make", "-C", root, goal).CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("make %s: %v\n%s", goal, err, out)
			return
		}
		b.path = filepath.Join(root, "bin", target)
	})
	return b.path, b.err
}

// randomPort returns a port that was free a moment ago, drawn below Linux's
// ephemeral range so that outgoing connections do not take it meanwhile.
func randomPort() (int, error) {
	for range 100 {
		port := 20000 + rand.IntN(12000)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		l.Close()
		return port, nil
	}
	return 0, errors.New("no free port found")
}

// StartServer starts a fresh server (new data directory, new ports) that
// lives until the test ends. A start that loses its ports to another
// process is retried on new ones.
func StartServer(t testing.TB, opts ServerOptions) *Server {
	t.Helper()
	target, err := Target()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := Binary(target)
	if err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for attempt := range 3 {
		s, err := startOnce(t, bin, target, opts, attempt)
		if err == nil {
			return s
		}
		lastErr = err
	}
	t.Fatalf("starting %s: %v", target, lastErr)
	return nil
}

func startOnce(t testing.TB, bin, target string, opts ServerOptions, attempt int) (*Server, error) {
	clientPort, err := randomPort()
	if err != nil {
		return nil, err
	}
	peerPort, err := randomPort()
	if err != nil {
		return nil, err
	}
	dir := t.TempDir()
	clientURL := fmt.Sprintf("http://127.0.0.1:%d", clientPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	args := []string{
		"--name=" + target,
		"--data-dir=" + filepath.Join(dir, "data"),
		"--listen-client-urls=" + clientURL,
		"--advertise-client-urls=" + clientURL,
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=" + target + "=" + peerURL,
		// As the apiserver's embedded test etcd: never restarted, so no fsync.
		"--unsafe-no-fsync",
		"--log-level=warn",
	}
	if opts.WatchProgressNotifyInterval > 0 {
		args = append(args, "--watch-progress-notify-interval="+opts.WatchProgressNotifyInterval.String())
	}
	logPath := filepath.Join(dir, fmt.Sprintf("%s-%d.log", target, attempt))
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	s := &Server{Endpoint: clientURL, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		logf.Close()
		close(s.exited)
	}()
	if err := s.waitReady(30 * time.Second); err != nil {
		s.stop()
		return nil, fmt.Errorf("%v\n%s", err, s.logTail())
	}
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("--- %s log (tail) ---\n%s", target, s.logTail())
		}
	})
	return s, nil
}

// waitReady waits for the client port to accept connections, then polls
// Status until the server answers or exits. (Dialing before the port is
// open would put the gRPC connection into its one-second reconnect backoff.)
func (s *Server) waitReady(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	host := strings.TrimPrefix(s.Endpoint, "http://")
	for {
		conn, err := net.DialTimeout("tcp", host, time.Second)
		if err == nil {
			conn.Close()
			break
		}
		select {
		case <-s.exited:
			return fmt.Errorf("server exited before it was ready: %v", err)
		case <-ctx.Done():
			return fmt.Errorf("server not listening after %v: %v", timeout, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{s.Endpoint}, DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer c.Close()
	for {
		callCtx, callCancel := context.WithTimeout(ctx, time.Second)
		_, err := c.Status(callCtx, s.Endpoint)
		callCancel()
		if err == nil {
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("server exited before it was ready: %v", err)
		case <-ctx.Done():
			return fmt.Errorf("server not ready after %v: %v", timeout, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (s *Server) stop() {
	s.cmd.Process.Kill()
	<-s.exited
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.logPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return strings.TrimSpace(string(b))
}

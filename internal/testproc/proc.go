package testproc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Defaults used by StartEtcd / StartSett.
const (
	DefaultReadyTimeout = 30 * time.Second
	StopTimeout         = 10 * time.Second
	LogTailLines        = 50
)

// Options configure a server started by StartEtcd or StartSett. The zero
// value starts a single-member cluster on fresh ports with a fresh data dir.
type Options struct {
	// Name is the member name (--name). Default: "etcd" or "sett".
	Name string
	// DataDir (--data-dir) is reused as given, e.g. another Proc's DataDir.
	// Default: a new directory under t.TempDir().
	DataDir string
	// ClientPort and PeerPort on Host. Default: FreePort(t).
	ClientPort, PeerPort int
	// Host is the IP address of the client and peer URLs. Default: 127.0.0.1.
	Host string
	// NetNS, if set, is a network namespace (as listed by `ip netns`) the
	// server runs in, through `ip netns exec`; Host must be reachable from
	// the test's own namespace.
	NetNS string
	// InitialCluster (--initial-cluster). Default: "<Name>=<PeerURL>".
	InitialCluster string
	// InitialClusterState (--initial-cluster-state), passed only if set.
	InitialClusterState string
	// ExtraArgs are appended after the generated flags (a repeated flag
	// overrides the generated one with Go's flag package).
	ExtraArgs []string
	// Env is appended to the environment. The inherited environment has its
	// ETCD_* and ETCDCTL_* variables removed so that a developer's shell does
	// not configure the server (ETCD_UNSUPPORTED_ARCH is kept).
	Env []string
	// ReadyTimeout bounds the wait for readiness. Default: DefaultReadyTimeout.
	ReadyTimeout time.Duration
	// Ready, if set, is an additional readiness check, polled after the
	// client port accepts TCP connections until it returns nil.
	Ready func(ctx context.Context, p *Proc) error
}

// Proc is a server process started by StartEtcd or StartSett. It is stopped
// when the test that started it finishes.
type Proc struct {
	Name       string
	Binary     string   // absolute path of the executable
	Args       []string // arguments, without the program name
	Env        []string // full environment
	ClientPort int
	PeerPort   int
	Host       string // IP address of the URLs, default 127.0.0.1
	NetNS      string // network namespace the process runs in, if any
	ClientURL  string // http://<Host>:<ClientPort>
	PeerURL    string // http://<Host>:<PeerPort>
	DataDir    string
	LogPath    string // combined stdout/stderr of every run, appended

	// Cmd is the current (or last) run of the process. Do not Wait on it.
	Cmd *exec.Cmd

	readyTimeout time.Duration
	ready        func(ctx context.Context, p *Proc) error

	mu      sync.Mutex
	done    chan struct{} // closed when Cmd has exited
	waitErr error
	runs    int
	dumped  bool
}

// StartEtcd starts the reference etcd (bin/etcd, built if needed) and waits
// until its client port accepts connections.
func StartEtcd(t testing.TB, opts Options) *Proc {
	t.Helper()
	return start(t, "etcd", EnsureBinary(t, "etcd"), opts)
}

// StartSett starts sett (built once per process by BuildSett) with the same
// etcd-style flags as StartEtcd and waits until its client port accepts
// connections.
func StartSett(t testing.TB, opts Options) *Proc {
	t.Helper()
	return start(t, "sett", BuildSett(t), opts)
}

func start(t testing.TB, kind, binary string, opts Options) *Proc {
	t.Helper()
	p := &Proc{
		Name:         opts.Name,
		Binary:       binary,
		ClientPort:   opts.ClientPort,
		PeerPort:     opts.PeerPort,
		Host:         opts.Host,
		NetNS:        opts.NetNS,
		DataDir:      opts.DataDir,
		readyTimeout: opts.ReadyTimeout,
		ready:        opts.Ready,
	}
	if p.Name == "" {
		p.Name = kind
	}
	if p.ClientPort == 0 {
		p.ClientPort = FreePort(t)
	}
	if p.PeerPort == 0 {
		p.PeerPort = FreePort(t)
	}
	if p.readyTimeout <= 0 {
		p.readyTimeout = DefaultReadyTimeout
	}
	if p.Host == "" {
		p.Host = "127.0.0.1"
	}
	p.ClientURL = "http://" + net.JoinHostPort(p.Host, strconv.Itoa(p.ClientPort))
	p.PeerURL = "http://" + net.JoinHostPort(p.Host, strconv.Itoa(p.PeerPort))

	if p.DataDir == "" {
		base := t.TempDir()
		p.DataDir = filepath.Join(base, p.Name+".data")
		p.LogPath = filepath.Join(base, p.Name+".log")
	} else {
		abs, err := filepath.Abs(p.DataDir)
		if err != nil {
			t.Fatalf("testproc: %v", err)
		}
		p.DataDir = abs
		p.LogPath = filepath.Join(t.TempDir(), p.Name+".log")
	}
	if err := os.MkdirAll(p.DataDir, 0o700); err != nil {
		t.Fatalf("testproc: %v", err)
	}

	cluster := opts.InitialCluster
	if cluster == "" {
		cluster = p.Name + "=" + p.PeerURL
	}
	p.Args = []string{
		"--name=" + p.Name,
		"--data-dir=" + p.DataDir,
		"--listen-client-urls=" + p.ClientURL,
		"--advertise-client-urls=" + p.ClientURL,
		"--listen-peer-urls=" + p.PeerURL,
		"--initial-advertise-peer-urls=" + p.PeerURL,
		"--initial-cluster=" + cluster,
	}
	if opts.InitialClusterState != "" {
		p.Args = append(p.Args, "--initial-cluster-state="+opts.InitialClusterState)
	}
	p.Args = append(p.Args, opts.ExtraArgs...)
	p.Env = append(serverEnv(), opts.Env...)

	// Registered before the first launch, so that a start failing below
	// still gets its process stopped and its log shown.
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			p.dumpTail(t)
		}
	})
	p.launch(t)
	return p
}

// serverEnv is os.Environ() without ETCD_* / ETCDCTL_* variables.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if (strings.HasPrefix(k, "ETCD_") || strings.HasPrefix(k, "ETCDCTL_")) && k != "ETCD_UNSUPPORTED_ARCH" {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// launch starts a new run of the process and waits for readiness; the
// previous run must have exited.
func (p *Proc) launch(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	p.runs++
	run := p.runs
	logf, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.mu.Unlock()
		t.Fatalf("testproc: %v", err)
	}
	fmt.Fprintf(logf, "=== testproc %s run %d at %s: %s %s\n", p.Name, run,
		time.Now().Format(time.RFC3339Nano), p.Binary, strings.Join(p.Args, " "))
	cmd := exec.Command(p.Binary, p.Args...)
	if p.NetNS != "" {
		// ip execs the binary after entering the namespace: the pid is the
		// server's, and Pdeathsig survives the exec.
		cmd = exec.Command("ip", append([]string{"netns", "exec", p.NetNS, p.Binary}, p.Args...)...)
	}
	cmd.Env = p.Env
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = sysProcAttr()
	err = cmd.Start()
	logf.Close() // the child has its own descriptor
	if err != nil {
		p.mu.Unlock()
		t.Fatalf("testproc: starting %s: %v", p.Name, err)
	}
	done := make(chan struct{})
	p.Cmd, p.done, p.waitErr = cmd, done, nil
	p.mu.Unlock()

	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		if p.Cmd == cmd {
			p.waitErr = err
		}
		p.mu.Unlock()
		close(done)
	}()

	if err := p.waitReady(done); err != nil {
		p.Kill()
		msg := fmt.Sprintf("testproc: %s (run %d, pid %d) not ready: %v", p.Name, run, cmd.Process.Pid, err)
		p.mu.Lock()
		p.dumped = true
		p.mu.Unlock()
		t.Fatalf("%s\n%s", msg, p.tail(LogTailLines))
	}
}

func (p *Proc) waitReady(done <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(context.Background(), p.readyTimeout)
	defer cancel()
	addr := p.ClientAddr()
	tcpOK := false
	var lastErr error
	for {
		select {
		case <-done:
			return fmt.Errorf("process exited: %v", p.ExitError())
		default:
		}
		if !tcpOK {
			var d net.Dialer
			dctx, dcancel := context.WithTimeout(ctx, time.Second)
			c, err := d.DialContext(dctx, "tcp", addr)
			dcancel()
			if err == nil {
				c.Close()
				tcpOK = true
			} else {
				lastErr = err
			}
		}
		if tcpOK {
			if p.ready == nil {
				return nil
			}
			if lastErr = p.ready(ctx, p); lastErr == nil {
				return nil
			}
		}
		select {
		case <-done:
			return fmt.Errorf("process exited: %v", p.ExitError())
		case <-ctx.Done():
			return fmt.Errorf("not ready within %v: %v", p.readyTimeout, lastErr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ClientAddr returns "<Host>:<ClientPort>" (a gRPC endpoint).
func (p *Proc) ClientAddr() string { return net.JoinHostPort(p.Host, strconv.Itoa(p.ClientPort)) }

// Pid returns the process id of the current (or last) run.
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.Cmd.Process.Pid
}

// Running reports whether the current run has not exited yet.
func (p *Proc) Running() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// ExitError returns the error from waiting on the last run: nil while it is
// running or if it exited with status 0, else e.g. an *exec.ExitError
// ("signal: killed" after Kill).
func (p *Proc) ExitError() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}

// Stop sends SIGTERM and waits for the process to exit; after StopTimeout it
// sends SIGKILL. It is a no-op if the process has already exited.
func (p *Proc) Stop() { p.signal(syscall.SIGTERM, StopTimeout) }

// Kill sends SIGKILL and waits for the process to exit (a crash, as far as
// the server can tell). It is a no-op if the process has already exited.
func (p *Proc) Kill() { p.signal(syscall.SIGKILL, 0) }

func (p *Proc) signal(sig os.Signal, grace time.Duration) {
	p.mu.Lock()
	cmd, done := p.Cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	if sig == syscall.SIGKILL || cmd.Process.Signal(sig) != nil {
		cmd.Process.Kill()
		<-done
		return
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		cmd.Process.Kill()
		<-done
	}
}

// Restart starts the process again with the same binary, arguments, data dir
// and ports, and waits for readiness. A still running process is stopped
// first (Stop); call Kill before Restart to simulate a crash instead.
func (p *Proc) Restart(t testing.TB) {
	t.Helper()
	p.Stop()
	p.launch(t)
}

// Logs returns everything the process wrote to stdout and stderr so far,
// over all runs.
func (p *Proc) Logs() string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return fmt.Sprintf("<reading %s: %v>", p.LogPath, err)
	}
	return string(b)
}

// tail returns the last n lines of the log.
func (p *Proc) tail(n int) string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return fmt.Sprintf("<reading %s: %v>", p.LogPath, err)
	}
	b = bytes.TrimRight(b, "\n")
	lines := bytes.Split(b, []byte("\n"))
	header := fmt.Sprintf("--- %s log %s (%d lines", p.Name, p.LogPath, len(lines))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
		header += fmt.Sprintf(", last %d shown", n)
	}
	return header + ") ---\n" + string(bytes.Join(lines, []byte("\n"))) + "\n--- end of " + p.Name + " log ---"
}

func (p *Proc) dumpTail(t testing.TB) {
	p.mu.Lock()
	dumped := p.dumped
	p.dumped = true
	p.mu.Unlock()
	if !dumped {
		t.Log(p.tail(LogTailLines))
	}
}

// Etcdctl runs bin/etcdctl (built if needed) against endpoints with args,
// e.g. Etcdctl(t, p.ClientURL, "put", "a", "b"), and returns its stdout. A
// non-zero exit is returned as an error that includes stderr. The command is
// killed after one minute.
func Etcdctl(t testing.TB, endpoints string, args ...string) (string, error) {
	t.Helper()
	bin := EnsureBinary(t, "etcdctl")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--endpoints=" + endpoints}, args...)...)
	cmd.Env = serverEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) || ctx.Err() != nil {
			return stdout.String(), fmt.Errorf("etcdctl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
		}
		t.Fatalf("testproc: running etcdctl: %v", err)
	}
	return stdout.String(), nil
}

package e2e

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Proc is one long-running child process (a store or a control plane
// component). Each run appends to the same log file, Dir/Name.log.
type Proc struct {
	Name    string
	Binary  string
	Args    []string
	Env     []string // added to the test's environment
	LogPath string

	cmd  *exec.Cmd
	done chan struct{}
	err  error // the last run's exit status, set before done is closed
}

// NewProc describes a process; Start runs it.
func NewProc(dir, name, binary string, args ...string) *Proc {
	return &Proc{Name: name, Binary: binary, Args: args, LogPath: filepath.Join(dir, name+".log")}
}

// Start launches a new run. The previous run, if any, must have exited.
func (p *Proc) Start() error {
	logf, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the child keeps its own descriptor
	fmt.Fprintf(logf, "=== %s started %s: %s %s\n", p.Name, time.Now().Format(time.RFC3339Nano), p.Binary, strings.Join(p.Args, " "))
	cmd := exec.Command(p.Binary, p.Args...)
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The kernel kills the child if the test binary dies without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done = cmd, done
	go func() {
		p.err = cmd.Wait()
		close(done)
	}()
	return nil
}

// Exited reports whether the current run has ended, and how.
func (p *Proc) Exited() (bool, error) {
	if p.done == nil {
		return true, nil
	}
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Stop sends SIGTERM and waits up to grace for the process to exit, then
// kills it. It returns the exit status when the process stopped by itself.
func (p *Proc) Stop(grace time.Duration) error {
	if exited, err := p.Exited(); exited {
		return err
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.cmd.Process.Kill()
	}
	select {
	case <-p.done:
		// Like etcd, a process may re-raise SIGTERM after cleaning up.
		var exit *exec.ExitError
		if errors.As(p.err, &exit) {
			if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
				return nil
			}
		}
		return p.err
	case <-time.After(grace):
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop within %v of SIGTERM", p.Name, grace)
	}
}

// Logs returns everything the process wrote, over all runs.
func (p *Proc) Logs() string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return fmt.Sprintf("<%v>", err)
	}
	return string(b)
}

// Tail returns the last n lines of the log.
func (p *Proc) Tail(n int) string {
	lines := strings.Split(strings.TrimRight(p.Logs(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// FreePorts returns n distinct TCP ports free on 127.0.0.1 right now.
func FreePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

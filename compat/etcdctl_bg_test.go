package compat

import (
	"bytes"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// bgCtl is an etcdctl process running in the background (elect, lock,
// make-mirror run until interrupted).
type bgCtl struct {
	args []string
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	err  bytes.Buffer
	done chan struct{}
	code int
}

// lockedWriter lets the test read a buffer the process writes to.
type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// startBg starts etcdctl --endpoints=endpoint args…; the test's end kills
// it if nothing stopped it before.
func startBg(t *testing.T, bin, endpoint string, args []string) *bgCtl {
	t.Helper()
	b := &bgCtl{args: args, done: make(chan struct{})}
	b.cmd = exec.Command(bin, append([]string{"--endpoints=" + endpoint}, args...)...)
	b.cmd.Env = etcdctlEnv()
	b.cmd.Stdout = lockedWriter{&b.mu, &b.out}
	b.cmd.Stderr = lockedWriter{&b.mu, &b.err}
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("etcdctl %s: %v", strings.Join(args, " "), err)
	}
	go func() {
		err := b.cmd.Wait()
		b.mu.Lock()
		b.code = b.cmd.ProcessState.ExitCode()
		if ws, ok := b.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			b.code = -int(ws.Signal())
		}
		_ = err
		b.mu.Unlock()
		close(b.done)
	}()
	t.Cleanup(func() {
		b.cmd.Process.Kill()
		<-b.done
	})
	return b
}

func (b *bgCtl) stdout() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.out.String()
}

// waitStdout waits until the process's stdout matches re.
func (b *bgCtl) waitStdout(re *regexp.Regexp, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for !re.MatchString(b.stdout()) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// waitExit waits for the process to end by itself (killing it after d) and
// returns what it printed; signal terminations are negative exit codes.
func (b *bgCtl) waitExit(d time.Duration) etcdctlResult {
	select {
	case <-b.done:
	case <-time.After(d):
		b.cmd.Process.Kill()
		<-b.done
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return etcdctlResult{stdout: b.out.String(), stderr: b.err.String(), code: b.code}
}

// bgReCanceledLog matches the client library's warning about a call that
// the interrupt itself canceled: whether a call was under way at that
// moment is timing.
var bgReCanceledLog = regexp.MustCompile(`(?m)^\{"level":"warn".*"error":"rpc error: code = Canceled desc = context canceled"\}\n`)

// interrupt sends SIGINT, as Ctrl-C would, and waits for the end.
func (b *bgCtl) interrupt() etcdctlResult {
	b.cmd.Process.Signal(syscall.SIGINT)
	r := b.waitExit(15 * time.Second)
	r.stderr = bgReCanceledLog.ReplaceAllString(r.stderr, "")
	return r
}

// coStep is one step of a script run on both sides in lockstep.
type coStep struct {
	run     []string       // a foreground etcdctl case
	start   string         // name of a background process to start with args
	args    []string       //
	wait    string         // a background process whose stdout must match re
	re      *regexp.Regexp //
	stop    string         // a background process to interrupt; its output is compared
	exit    string         // a background process that ends by itself; compared
	sleep   time.Duration
	compare string // compare a running process's output so far (it must be the same)
}

func coRun(args ...string) coStep { return coStep{run: args} }
func coStart(name string, args ...string) coStep {
	return coStep{start: name, args: args}
}
func coWait(name, re string) coStep { return coStep{wait: name, re: regexp.MustCompile(re)} }
func coStop(name string) coStep     { return coStep{stop: name} }
func coExit(name string) coStep     { return coStep{exit: name} }
func coSleep(d time.Duration) coStep {
	return coStep{sleep: d}
}
func coSoFar(name string) coStep { return coStep{compare: name} }

// coSide is one side's state while a script runs.
type coSide struct {
	*etcdctlSide
	procs map[string]*bgCtl
	// sessionRe finds the lease IDs in election and lock keys; each new
	// one is named S1, S2, … in order of appearance.
	sessionRe *regexp.Regexp
}

func (s *coSide) learnSessions(out string) {
	for _, m := range s.sessionRe.FindAllStringSubmatch(out, -1) {
		v, err := strconv.ParseUint(m[1], 16, 64)
		if err != nil {
			continue
		}
		id := int64(v)
		known := false
		for _, l := range s.leases {
			known = known || l == id
		}
		if !known {
			name := fmt.Sprintf("S%d", len(s.order)+1)
			s.leases[name] = id
			s.order = append(s.order, name)
		}
	}
}

// runCoScript runs steps on etcd and sett and compares every etcdctl
// invocation's output, foreground or background.
func runCoScript(t *testing.T, bin string, sides []*etcdctlSide, sessionRe string, steps []coStep) {
	t.Helper()
	co := make([]*coSide, len(sides))
	for i, s := range sides {
		co[i] = &coSide{etcdctlSide: s, procs: map[string]*bgCtl{}, sessionRe: regexp.MustCompile(sessionRe)}
	}
	compared := func(name string, args []string, res [2]etcdctlResult) {
		t.Helper()
		for j, s := range co {
			s.learnSessions(res[j].stdout)
		}
		var got [2]etcdctlResult
		for j, s := range co {
			got[j] = etcdctlResult{stdout: s.normalize(res[j].stdout), stderr: s.normalize(res[j].stderr), code: res[j].code}
		}
		recordCtl(args, got[0] == got[1])
		if got[0] != got[1] {
			t.Errorf("%s: etcdctl %s\n===== etcd =====\n%s===== sett =====\n%s", name, strings.Join(args, " "), got[0], got[1])
		} else if *etcdctlDump {
			t.Logf("%s: etcdctl %s\n%s", name, strings.Join(args, " "), got[0])
		}
	}
	both := func(f func(j int, s *coSide)) {
		var wg sync.WaitGroup
		for j, s := range co {
			wg.Add(1)
			go func() { defer wg.Done(); f(j, s) }()
		}
		wg.Wait()
	}
	for i, st := range steps {
		label := fmt.Sprintf("step %d", i)
		began := time.Now()
		switch {
		case st.run != nil:
			var res [2]etcdctlResult
			var errs [2]error
			both(func(j int, s *coSide) {
				args, err := s.expand(st.run)
				if err != nil {
					errs[j] = err
					return
				}
				res[j], errs[j] = runEtcdctl(bin, s.endpoint, args, "")
			})
			for j := range errs {
				if errs[j] != nil {
					t.Fatalf("%s: %s: %v", label, co[j].name, errs[j])
				}
			}
			compared(label, st.run, res)
		case st.start != "":
			for _, s := range co {
				s.procs[st.start] = startBg(t, bin, s.endpoint, st.args)
			}
		case st.wait != "":
			var ok [2]bool
			both(func(j int, s *coSide) { ok[j] = s.procs[st.wait].waitStdout(st.re, 20*time.Second) })
			if !ok[0] {
				t.Fatalf("test bug (%s): etcd's %q never printed %q; it printed %q", label, st.wait, st.re, co[0].procs[st.wait].stdout())
			}
			if !ok[1] {
				t.Errorf("%s: etcdctl %s: etcd's printed %q within 20s, sett's did not:\n%q",
					label, strings.Join(co[0].procs[st.wait].args, " "), st.re, co[1].procs[st.wait].stdout())
			}
			for _, s := range co {
				s.learnSessions(s.procs[st.wait].stdout())
			}
		case st.compare != "":
			var res [2]etcdctlResult
			for j, s := range co {
				res[j] = etcdctlResult{stdout: s.procs[st.compare].stdout()}
			}
			compared(label+" (output so far)", co[0].procs[st.compare].args, res)
		case st.stop != "" || st.exit != "":
			name := st.stop + st.exit
			var res [2]etcdctlResult
			both(func(j int, s *coSide) {
				if st.stop != "" {
					res[j] = s.procs[name].interrupt()
				} else {
					res[j] = s.procs[name].waitExit(30 * time.Second)
				}
			})
			compared(label, co[0].procs[name].args, res)
		case st.sleep > 0:
			time.Sleep(st.sleep)
		}
		if d := time.Since(began); d > 5*time.Second {
			t.Logf("%s took %v", label, d.Round(time.Millisecond))
		}
	}
}

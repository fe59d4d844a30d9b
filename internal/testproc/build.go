package testproc

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Binaries lists the reference binaries EnsureBinary can build (see
// mk/tools.mk).
var Binaries = []string{"etcd", "etcdctl", "etcdutl", "benchmark"}

// SettBinaryName is the file name, inside <root>/bin, of the sett binary
// built by BuildSett.
const SettBinaryName = "sett-testproc"

type buildResult struct {
	path string
	err  error
}

var (
	ensureMu   sync.Mutex
	ensureDone = map[string]buildResult{}
)

// EnsureBinary returns the absolute path of <root>/bin/<name> for name in
// Binaries, building it with `make -f mk/tools.mk bin/<name>` first if it is
// missing or older than tools/go.mod or tools/go.sum. Builds are serialised
// within the process and, through a lock file in <root>/bin, across
// concurrently running test processes. A failed build fails the test.
func EnsureBinary(t testing.TB, name string) string {
	t.Helper()
	known := false
	for _, b := range Binaries {
		known = known || b == name
	}
	if !known {
		t.Fatalf("testproc.EnsureBinary: unknown binary %q (known: %s)", name, strings.Join(Binaries, ", "))
	}

	ensureMu.Lock()
	defer ensureMu.Unlock()
	res, ok := ensureDone[name]
	if !ok {
		res = ensureBinary(name)
		ensureDone[name] = res
	}
	if res.err != nil {
		t.Fatalf("testproc.EnsureBinary(%q): %v", name, res.err)
	}
	return res.path
}

func ensureBinary(name string) buildResult {
	root := RepoRoot()
	bin := filepath.Join(root, "bin", name)
	if binaryFresh(root, bin) {
		return buildResult{path: bin}
	}
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		return buildResult{err: err}
	}
	unlock, err := lockFile(filepath.Join(root, "bin", ".build.lock"))
	if err != nil {
		return buildResult{err: fmt.Errorf("locking bin/.build.lock: %w", err)}
	}
	defer unlock()
	// Another process may have built it while we waited for the lock; make
	// notices that by itself, but skip even starting it when we can.
	if binaryFresh(root, bin) {
		return buildResult{path: bin}
	}
	makeBin, err := exec.LookPath("make")
	if err != nil {
		return buildResult{err: fmt.Errorf("bin/%s needs building but make is not installed: %w", name, err)}
	}
	start := time.Now()
	cmd := exec.Command(makeBin, "-C", root, "-f", filepath.Join("mk", "tools.mk"), "bin/"+name)
	cmd.Env = buildEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return buildResult{err: fmt.Errorf("%s failed after %v: %v\n%s", strings.Join(cmd.Args, " "), time.Since(start).Round(time.Millisecond), err, out)}
	}
	if _, err := os.Stat(bin); err != nil {
		return buildResult{err: fmt.Errorf("%s succeeded but %s is missing: %v\n%s", strings.Join(cmd.Args, " "), bin, err, out)}
	}
	return buildResult{path: bin}
}

// binaryFresh reports whether bin exists and is newer than the files of the
// tools module it is built from (the same rule as mk/tools.mk).
func binaryFresh(root, bin string) bool {
	fi, err := os.Stat(bin)
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	for _, dep := range []string{"go.mod", "go.sum"} {
		di, err := os.Stat(filepath.Join(root, "tools", dep))
		if err != nil || di.ModTime().After(fi.ModTime()) {
			return false
		}
	}
	return true
}

// buildEnv is the environment for build subprocesses: ours, minus the
// variables through which an enclosing make would leak its jobserver.
func buildEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES":
			continue
		}
		env = append(env, kv)
	}
	return env
}

var (
	settOnce sync.Once
	settRes  buildResult
)

// BuildSett builds ./cmd/sett of the repository with `go build`, once per
// test process, and returns the absolute path of the binary
// (<root>/bin/sett-testproc). The binary is written under a temporary name
// and renamed into place, so processes building concurrently never observe a
// partial file and a binary already running is never modified. A failed build
// fails the test (and every later call in the process).
func BuildSett(t testing.TB) string {
	t.Helper()
	settOnce.Do(func() { settRes = buildSett() })
	if settRes.err != nil {
		t.Fatalf("testproc.BuildSett: %v", settRes.err)
	}
	return settRes.path
}

func buildSett() buildResult {
	root := RepoRoot()
	binDir := filepath.Join(root, "bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return buildResult{err: err}
	}
	goBin, err := goTool()
	if err != nil {
		return buildResult{err: err}
	}
	dst := filepath.Join(binDir, SettBinaryName)
	tmp := fmt.Sprintf("%s.%d.tmp", dst, os.Getpid())
	defer os.Remove(tmp)
	start := time.Now()
	cmd := exec.Command(goBin, "build", "-o", tmp, "./cmd/sett")
	cmd.Dir = root
	cmd.Env = buildEnv()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return buildResult{err: fmt.Errorf("go build ./cmd/sett failed after %v: %v\n%s", time.Since(start).Round(time.Millisecond), err, out.Bytes())}
	}
	if err := os.Rename(tmp, dst); err != nil {
		return buildResult{err: err}
	}
	return buildResult{path: dst}
}

// goTool returns the go command to build with: the one from the toolchain
// running the tests if it has one, else whatever is on PATH.
func goTool() (string, error) {
	if goroot := os.Getenv("GOROOT"); goroot != "" {
		p := filepath.Join(goroot, "bin", "go")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("go command not found: %w", err)
	}
	return p, nil
}

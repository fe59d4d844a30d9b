package testproc

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRepoRoot(t *testing.T) {
	root := RepoRoot()
	if got := modulePathOf(filepath.Join(root, "go.mod")); got != ModulePath {
		t.Fatalf("RepoRoot() = %s, module %q", root, got)
	}
	if _, err := os.Stat(filepath.Join(root, "mk", "tools.mk")); err != nil {
		t.Fatalf("RepoRoot() = %s: %v", root, err)
	}
}

func TestModulePathOf(t *testing.T) {
	dir := t.TempDir()
	for in, want := range map[string]string{
		"module github.com/sett-dev/sett\n\ngo 1.26\n":     "github.com/sett-dev/sett",
		"// c\nmodule \"github.com/sett-dev/sett\" // x\n": "github.com/sett-dev/sett",
		"module github.com/sett-dev/sett/tools\n":          "github.com/sett-dev/sett/tools",
		"modulex foo\n": "",
	} {
		p := filepath.Join(dir, "go.mod")
		if err := os.WriteFile(p, []byte(in), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := modulePathOf(p); got != want {
			t.Errorf("modulePathOf(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFreePortDistinct(t *testing.T) {
	seen := map[int]bool{}
	for _, p := range FreePorts(t, 20) {
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
}

func etcdctl(t *testing.T, p *Proc, args ...string) string {
	t.Helper()
	out, err := Etcdctl(t, p.ClientURL, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestEtcdKillRestart starts the reference etcd, writes a key with etcdctl,
// crashes the server with SIGKILL and checks that the key survives a restart
// on the same data dir and ports.
func TestEtcdKillRestart(t *testing.T) {
	p := StartEtcd(t, Options{})

	if out := etcdctl(t, p, "put", "a", "b"); strings.TrimSpace(out) != "OK" {
		t.Fatalf("put a b: %q", out)
	}
	if out := etcdctl(t, p, "get", "a"); out != "a\nb\n" {
		t.Fatalf("get a before restart: %q", out)
	}

	oldPid := p.Pid()
	p.Kill()
	if p.Running() {
		t.Fatal("still running after Kill")
	}
	if p.ExitError() == nil {
		t.Fatal("ExitError() = nil after SIGKILL")
	}

	p.Restart(t)
	if p.Pid() == oldPid {
		t.Fatalf("pid unchanged after Restart: %d", oldPid)
	}
	if out := etcdctl(t, p, "get", "a"); out != "a\nb\n" {
		t.Fatalf("get a after restart: %q", out)
	}
	if _, err := Etcdctl(t, p.ClientURL, "get", "a", "--print-value-only"); err != nil {
		t.Fatal(err)
	}

	p.Stop()
	if p.Running() {
		t.Fatal("still running after Stop")
	}
	if n := strings.Count(p.Logs(), "=== testproc etcd run "); n != 2 {
		t.Errorf("log has %d run markers, want 2", n)
	}
}

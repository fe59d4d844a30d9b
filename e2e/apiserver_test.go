package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// repoRoot is the sett repository this module sits in.
func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(wd)
}

// binary builds bin/<name> with make when it is missing or stale.
func binary(t *testing.T, name string) string {
	t.Helper()
	root := repoRoot(t)
	target := "bin/" + name
	if name == "sett" {
		target = "build"
	}
	cmd := exec.Command("make", "-C", root, target)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make %s: %v\n%s", target, err, out)
	}
	return filepath.Join(root, "bin", name)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// start runs a process for the test's lifetime, logging to dir/name.log.
func start(t *testing.T, dir, name string, bin string, args ...string) *exec.Cmd {
	t.Helper()
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			if len(b) > 6000 {
				b = b[len(b)-6000:]
			}
			t.Logf("--- %s log (tail) ---\n%s", name, b)
		}
	})
	return cmd
}

// apiClient talks to kube-apiserver as a system:masters token user.
type apiClient struct {
	t     *testing.T
	base  string
	token string
	http  *http.Client
}

func (c *apiClient) do(method, path string, body any) (int, map[string]any) {
	c.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func (c *apiClient) must(method, path string, body any, want int) map[string]any {
	c.t.Helper()
	code, out := c.do(method, path, body)
	if code != want {
		c.t.Fatalf("%s %s: status %d, want %d: %v", method, path, code, want, out)
	}
	return out
}

// TestKubeAPIServerOnSett runs kube-apiserver on a fresh sett and drives
// the storage paths Kubernetes uses: create, get, update with a stale
// resource version (conflict), delete, lists paged with limit and continue
// at the first page's revision, a watch that sees every change, and the
// apiserver's compaction loop. It then checks the apiserver log for storage
// errors.
func TestKubeAPIServerOnSett(t *testing.T) {
	sett := binary(t, "sett")
	kas := binary(t, "kube-apiserver")
	dir := t.TempDir()
	settPort, kasPort := freePort(t), freePort(t)
	settURL := fmt.Sprintf("http://127.0.0.1:%d", settPort)
	start(t, dir, "sett", sett, "--data-dir", filepath.Join(dir, "sett.data"),
		"--listen-client-urls", settURL, "--advertise-client-urls", settURL,
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", freePort(t)), "--log-level", "warn")

	pub, priv, err := ServiceAccountKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	tokens := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte("e2e-token,admin,admin,system:masters\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	start(t, dir, "kube-apiserver", kas,
		"--etcd-servers="+settURL,
		fmt.Sprintf("--secure-port=%d", kasPort), "--bind-address=127.0.0.1",
		"--cert-dir="+filepath.Join(dir, "certs"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+pub, "--service-account-signing-key-file="+priv,
		"--service-cluster-ip-range=10.96.0.0/16",
		"--authorization-mode=AlwaysAllow", "--token-auth-file="+tokens,
		// Compact often, so that lists, watches and the compaction
		// transaction meet compacted revisions during the test.
		"--etcd-compaction-interval=5s")

	c := &apiClient{t: t, base: fmt.Sprintf("https://127.0.0.1:%d", kasPort), token: "e2e-token",
		http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		req, _ := http.NewRequest("GET", c.base+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+c.token)
		if resp, err := c.http.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("kube-apiserver not ready in 2 minutes")
		}
		time.Sleep(500 * time.Millisecond)
	}

	c.must("POST", "/api/v1/namespaces", map[string]any{"metadata": map[string]any{"name": "e2e"}}, 201)

	// A watch from now on must see every change below.
	first := c.must("GET", "/api/v1/namespaces/e2e/configmaps", nil, 200)
	watchRV := first["metadata"].(map[string]any)["resourceVersion"].(string)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan map[string]any, 1000)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "GET", c.base+"/api/v1/namespaces/e2e/configmaps?watch=1&resourceVersion="+watchRV, nil)
		req.Header.Set("Authorization", "Bearer "+c.token)
		resp, err := c.http.Do(req)
		if err != nil {
			return
		}
		defer resp.Body.Close()
		dec := json.NewDecoder(resp.Body)
		for {
			var ev map[string]any
			if dec.Decode(&ev) != nil {
				return
			}
			events <- ev
		}
	}()

	const n = 60
	for i := 0; i < n; i++ {
		c.must("POST", "/api/v1/namespaces/e2e/configmaps", map[string]any{
			"metadata": map[string]any{"name": fmt.Sprintf("cm-%03d", i)}, "data": map[string]any{"i": fmt.Sprint(i)}}, 201)
	}
	cm := c.must("GET", "/api/v1/namespaces/e2e/configmaps/cm-000", nil, 200)
	stale := cm["metadata"].(map[string]any)["resourceVersion"].(string)
	cm["data"] = map[string]any{"i": "updated"}
	c.must("PUT", "/api/v1/namespaces/e2e/configmaps/cm-000", cm, 200)
	cm["metadata"].(map[string]any)["resourceVersion"] = stale
	c.must("PUT", "/api/v1/namespaces/e2e/configmaps/cm-000", cm, 409) // guarded update: conflict
	c.must("DELETE", "/api/v1/namespaces/e2e/configmaps/cm-001", nil, 200)

	// Paged list: every page at the first page's revision, while writes go on.
	var names []string
	cont := ""
	for page := 0; ; page++ {
		out := c.must("GET", "/api/v1/namespaces/e2e/configmaps?limit=7&continue="+cont, nil, 200)
		for _, it := range out["items"].([]any) {
			names = append(names, it.(map[string]any)["metadata"].(map[string]any)["name"].(string))
		}
		if page == 0 {
			c.must("POST", "/api/v1/namespaces/e2e/configmaps", map[string]any{"metadata": map[string]any{"name": "zz-late"}}, 201)
		}
		next, _ := out["metadata"].(map[string]any)["continue"].(string)
		if next == "" {
			break
		}
		cont = next
	}
	if len(names) != n-1 {
		t.Fatalf("paged list returned %d items, want %d (the snapshot of the first page): %v", len(names), n-1, names)
	}
	for i := 1; i < len(names); i++ {
		if names[i-1] >= names[i] {
			t.Fatalf("paged list out of order or repeated at %d: %v", i, names)
		}
	}

	// The watch saw every change, in order.
	want := n + 1 + 1 + 1 // creates, update, delete, late create
	var got []string
	timeout := time.After(30 * time.Second)
	for len(got) < want {
		select {
		case ev := <-events:
			obj := ev["object"].(map[string]any)
			got = append(got, fmt.Sprintf("%s %s", ev["type"], obj["metadata"].(map[string]any)["name"]))
		case <-timeout:
			t.Fatalf("watch saw %d of %d changes: %v", len(got), want, got)
		}
	}
	if got[0] != "ADDED cm-000" || got[n] != "MODIFIED cm-000" || got[n+1] != "DELETED cm-001" || got[n+2] != "ADDED zz-late" {
		t.Fatalf("watch events out of order: first %q, then %q %q %q", got[0], got[n], got[n+1], got[n+2])
	}

	// Let the apiserver compact a few times, then list again.
	time.Sleep(12 * time.Second)
	out := c.must("GET", "/api/v1/namespaces/e2e/configmaps", nil, 200)
	if items := len(out["items"].([]any)); items != n {
		t.Fatalf("list after compactions: %d items, want %d", items, n)
	}
	logs, _ := os.ReadFile(filepath.Join(dir, "kube-apiserver.log"))
	for _, line := range strings.Split(string(logs), "\n") {
		l := strings.ToLower(line)
		if strings.HasPrefix(line, "E") && (strings.Contains(l, "etcd") || strings.Contains(l, "storage")) ||
			strings.Contains(l, "too large resource version") {
			t.Errorf("apiserver storage error: %s", line)
		}
	}
}

package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// migrationObject is one object created before a migration: its API path
// and what must survive (resourceVersion and content).
type migrationObject struct {
	path  string
	field string // "data" or "spec": the content compared after migration
	rv    string
	value any
}

// kasOn starts kube-apiserver on the store at storeURL and waits for
// /readyz; stop ends it with SIGTERM.
func kasOn(t *testing.T, dir, name, kas, storeURL string) (c *apiClient, stop func()) {
	t.Helper()
	pub, priv, err := ServiceAccountKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	tokens := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte("e2e-token,admin,admin,system:masters\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	cmd := start(t, dir, name, kas,
		"--etcd-servers="+storeURL,
		fmt.Sprintf("--secure-port=%d", port), "--bind-address=127.0.0.1",
		"--cert-dir="+filepath.Join(dir, name+"-certs"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+pub, "--service-account-signing-key-file="+priv,
		"--service-cluster-ip-range=10.96.0.0/16",
		"--authorization-mode=AlwaysAllow", "--token-auth-file="+tokens)
	c = &apiClient{t: t, base: fmt.Sprintf("https://127.0.0.1:%d", port), token: "e2e-token",
		http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}}
	waitReadyz(t, c)
	return c, func() { stopProcess(t, cmd) }
}

func waitReadyz(t *testing.T, c *apiClient) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		req, _ := http.NewRequest("GET", c.base+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+c.token)
		if resp, err := c.http.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("kube-apiserver not ready in 2 minutes")
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// stopProcess ends a process started by start with SIGTERM and waits
// for it (killing it after 30s).
func stopProcess(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Process.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// startStore runs etcd or sett (same flags) on dataDir and returns its
// client URL once it answers etcdctl endpoint health.
func startStore(t *testing.T, dir, name, bin, etcdctl, dataDir string) (string, *exec.Cmd) {
	t.Helper()
	url := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	peer := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	cmd := start(t, dir, name, bin, "--name", "default", "--data-dir", dataDir,
		"--listen-client-urls", url, "--advertise-client-urls", url,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "default="+peer, "--log-level", "warn")
	deadline := time.Now().Add(time.Minute)
	for exec.Command(etcdctl, "--endpoints", url, "endpoint", "health").Run() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("%s not healthy in a minute", name)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return url, cmd
}

// storeRevision is the store's current revision (etcdctl endpoint status).
func storeRevision(t *testing.T, etcdctl, url string) int64 {
	t.Helper()
	out, err := exec.Command(etcdctl, "--endpoints", url, "endpoint", "status", "-w", "json").Output()
	if err != nil {
		t.Fatalf("endpoint status: %v", err)
	}
	var st []struct {
		Status struct {
			Header struct {
				Revision int64 `json:"revision"`
			} `json:"header"`
		} `json:"Status"`
	}
	if err := json.Unmarshal(out, &st); err != nil || len(st) != 1 {
		t.Fatalf("endpoint status %s: %v", out, err)
	}
	return st[0].Status.Header.Revision
}

func run(t *testing.T, bin string, args ...string) {
	t.Helper()
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", filepath.Base(bin), args, err, out)
	}
}

func metaOf(obj map[string]any) map[string]any { return obj["metadata"].(map[string]any) }

// TestKubeAPIServerAcrossMigration: objects created through kube-apiserver
// on real etcd, migrated with etcdctl snapshot save + sett snapshot restore,
// are served by kube-apiserver on sett with the same resourceVersions and
// content; lists are at or past the migrated revision, the watch cache
// starts at the migrated revision (older RVs are 410 Expired, a watch from a
// later list RV sees a new change), and new writes get RVs past
// the migrated revision.
func TestKubeAPIServerAcrossMigration(t *testing.T) {
	sett := binary(t, "sett")
	kas := binary(t, "kube-apiserver")
	etcd := binary(t, "etcd")
	etcdctl := binary(t, "etcdctl")
	dir := t.TempDir()

	etcdURL, etcdCmd := startStore(t, dir, "etcd", etcd, etcdctl, filepath.Join(dir, "etcd.data"))
	c, stopKAS := kasOn(t, dir, "kube-apiserver-etcd", kas, etcdURL)

	var objs []*migrationObject
	created := func(path, field string, out map[string]any) {
		objs = append(objs, &migrationObject{path: path, field: field, rv: metaOf(out)["resourceVersion"].(string), value: out[field]})
	}
	for _, ns := range []string{"mig-a", "mig-b"} {
		out := c.must("POST", "/api/v1/namespaces", map[string]any{"metadata": map[string]any{"name": ns}}, 201)
		created("/api/v1/namespaces/"+ns, "spec", out)
		for i := 0; i < 5; i++ {
			name := fmt.Sprintf("cm-%d", i)
			out := c.must("POST", "/api/v1/namespaces/"+ns+"/configmaps", map[string]any{
				"metadata": map[string]any{"name": name}, "data": map[string]any{"i": fmt.Sprint(i), "ns": ns}}, 201)
			created("/api/v1/namespaces/"+ns+"/configmaps/"+name, "data", out)
		}
		for i := 0; i < 3; i++ {
			name := fmt.Sprintf("secret-%d", i)
			out := c.must("POST", "/api/v1/namespaces/"+ns+"/secrets", map[string]any{
				"metadata": map[string]any{"name": name}, "stringData": map[string]any{"password": fmt.Sprintf("pw-%s-%d", ns, i)}}, 201)
			created("/api/v1/namespaces/"+ns+"/secrets/"+name, "data", out)
		}
	}
	// An overwritten configmap keeps its latest resourceVersion.
	cm := c.must("GET", "/api/v1/namespaces/mig-a/configmaps/cm-0", nil, 200)
	cm["data"] = map[string]any{"i": "updated"}
	out := c.must("PUT", "/api/v1/namespaces/mig-a/configmaps/cm-0", cm, 200)
	for _, o := range objs {
		if o.path == "/api/v1/namespaces/mig-a/configmaps/cm-0" {
			o.rv, o.value = metaOf(out)["resourceVersion"].(string), out["data"]
		}
	}
	dep := map[string]any{
		"metadata": map[string]any{"name": "web"},
		"spec": map[string]any{
			"replicas": 2,
			"selector": map[string]any{"matchLabels": map[string]any{"app": "web"}},
			"template": map[string]any{
				"metadata": map[string]any{"labels": map[string]any{"app": "web"}},
				"spec":     map[string]any{"containers": []any{map[string]any{"name": "web", "image": "nginx:1.27"}}},
			},
		},
	}
	out = c.must("POST", "/apis/apps/v1/namespaces/mig-b/deployments", dep, 201)
	created("/apis/apps/v1/namespaces/mig-b/deployments/web", "spec", out)

	list := c.must("GET", "/api/v1/namespaces/mig-a/configmaps", nil, 200)
	listRV := metaOf(list)["resourceVersion"].(string)

	stopKAS()
	snap := filepath.Join(dir, "etcd.snapshot.db")
	run(t, etcdctl, "--endpoints", etcdURL, "snapshot", "save", snap)
	migrated := storeRevision(t, etcdctl, etcdURL)
	stopProcess(t, etcdCmd)

	settData := filepath.Join(dir, "sett.data")
	run(t, sett, "snapshot", "restore", snap, "--data-dir", settData, "--quiet")
	settURL, _ := startStore(t, dir, "sett", sett, etcdctl, settData)
	if got := storeRevision(t, etcdctl, settURL); got != migrated {
		t.Fatalf("sett revision after restore %d, want etcd's %d", got, migrated)
	}
	c, _ = kasOn(t, dir, "kube-apiserver-sett", kas, settURL)

	// Every object, same resourceVersion, same content.
	for _, o := range objs {
		got := c.must("GET", o.path, nil, 200)
		if rv := metaOf(got)["resourceVersion"].(string); rv != o.rv {
			t.Errorf("%s: resourceVersion %s after migration, want %s", o.path, rv, o.rv)
		}
		if !reflect.DeepEqual(got[o.field], o.value) {
			t.Errorf("%s: %s %v after migration, want %v", o.path, o.field, got[o.field], o.value)
		}
	}
	// Lists see every object and are at or past the migrated revision.
	for _, l := range []struct {
		path string
		n    int
	}{{"/api/v1/namespaces/mig-a/configmaps", 5}, {"/api/v1/namespaces/mig-b/secrets", 3}, {"/apis/apps/v1/namespaces/mig-b/deployments", 1}} {
		out := c.must("GET", l.path, nil, 200)
		if n := len(out["items"].([]any)); n < l.n {
			t.Errorf("list %s: %d items, want at least %d", l.path, n, l.n)
		}
		rv, err := strconv.ParseInt(metaOf(out)["resourceVersion"].(string), 10, 64)
		if err != nil || rv < migrated {
			t.Errorf("list %s: resourceVersion %v (%v), want >= migrated revision %d", l.path, rv, err, migrated)
		}
	}

	// kube-apiserver's watch cache starts at the migrated revision (as after
	// any apiserver restart on etcd): a watch from the pre-migration list RV
	// is 410 Expired, naming a cache start at or past the migrated revision.
	code, st := c.do("GET", "/api/v1/namespaces/mig-a/configmaps?watch=1&resourceVersion="+listRV+"&timeoutSeconds=1", nil)
	msg, _ := st["object"].(map[string]any)["message"].(string)
	var oldRV, cacheStart int64
	if code != 200 || st["type"] != "ERROR" || func() bool {
		_, err := fmt.Sscanf(msg, "too old resource version: %d (%d)", &oldRV, &cacheStart)
		return err != nil
	}() || cacheStart < migrated {
		t.Fatalf("watch from pre-migration RV %s: %d %v, want 410 with a cache start >= %d", listRV, code, st, migrated)
	}
	// A watch from a post-migration list RV receives a later change, and
	// that change's RV is past the migrated revision.
	listRV = metaOf(c.must("GET", "/api/v1/namespaces/mig-a/configmaps", nil, 200))["resourceVersion"].(string)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan map[string]any, 100)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "GET", c.base+"/api/v1/namespaces/mig-a/configmaps?watch=1&resourceVersion="+listRV, nil)
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
	time.Sleep(time.Second)
	out = c.must("POST", "/api/v1/namespaces/mig-a/configmaps", map[string]any{"metadata": map[string]any{"name": "after"}}, 201)
	newRV, _ := strconv.ParseInt(metaOf(out)["resourceVersion"].(string), 10, 64)
	if newRV <= migrated {
		t.Errorf("write after migration got resourceVersion %d, want > migrated revision %d", newRV, migrated)
	}
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev["type"] == "ERROR" {
				t.Fatalf("watch from pre-migration RV %s: %v", listRV, ev)
			}
			obj := ev["object"].(map[string]any)
			if ev["type"] == "ADDED" && metaOf(obj)["name"] == "after" {
				if rv := metaOf(obj)["resourceVersion"].(string); rv != strconv.FormatInt(newRV, 10) {
					t.Errorf("watch event RV %s, want %d", rv, newRV)
				}
				return
			}
		case <-timeout:
			t.Fatalf("watch from pre-migration RV %s did not see the write after migration", listRV)
		}
	}
}

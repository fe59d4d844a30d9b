package deploy

import (
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sett-dev/sett/internal/testproc"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// testImage is the tag `make image` builds for this test, apart from the
// developer's own sett.local/sett:dev.
const testImage = "sett.local/sett:deploy-test"

// docker runs the docker CLI and returns its trimmed standard output.
func docker(ctx context.Context, args ...string) (string, error) {
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, errb.String())
	}
	return strings.TrimSpace(out.String()), nil
}

// TestImage builds the image with `make image`, runs it with its default
// command on a private Docker network, and uses it as an etcd server: the
// binary is static, /readyz answers, a key written survives a restart of the
// container (the data volume belongs to the unprivileged user).
func TestImage(t *testing.T) {
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("SKIPPED, NOT PASSED: no docker command on this machine; the image cannot be built")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	root := testproc.RepoRoot()

	make := exec.CommandContext(ctx, "make", "image", "SETT_IMAGE="+testImage)
	make.Dir = root
	make.Env = withoutMakeJobserver(os.Environ())
	if out, err := make.CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	assertStatic(t, filepath.Join(root, "bin/.image/sett"))

	suffix := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano()%100000)
	network, name := "sett-deploy-test-"+suffix, "sett-deploy-test-"+suffix
	if _, err := docker(ctx, "network", "create", "--internal", network); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		_, _ = docker(ctx, "rm", "-f", "-v", name)
		_, _ = docker(ctx, "network", "rm", network)
	})
	if _, err := docker(ctx, "run", "-d", "--name", name, "--network", network, testImage); err != nil {
		t.Fatal(err)
	}
	if user, err := docker(ctx, "inspect", "-f", "{{.Config.User}}", name); err != nil || user != "65532:65532" {
		t.Errorf("container user = %q (%v), want 65532:65532", user, err)
	}

	endpoint := waitReady(ctx, t, name, network)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	put, err := cli.Put(ctx, "/deploy/key", "value")
	if err != nil {
		t.Fatalf("put: %v", err)
	}
	cli.Close()

	if _, err := docker(ctx, "restart", "-t", "10", name); err != nil {
		t.Fatal(err)
	}
	endpoint = waitReady(ctx, t, name, network)
	cli2, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli2.Close()
	got, err := cli2.Get(ctx, "/deploy/key")
	if err != nil {
		t.Fatalf("get after restart: %v", err)
	}
	if len(got.Kvs) != 1 || string(got.Kvs[0].Value) != "value" || got.Kvs[0].ModRevision != put.Header.Revision {
		t.Fatalf("after restart: %v, want value at revision %d", got.Kvs, put.Header.Revision)
	}
}

// waitReady waits until the container's /readyz answers 200 on its address
// in network and returns its client URL.
func waitReady(ctx context.Context, t *testing.T, name, network string) string {
	t.Helper()
	var lastErr error
	for ctx.Err() == nil {
		ip, err := docker(ctx, "inspect", "-f", fmt.Sprintf("{{(index .NetworkSettings.Networks %q).IPAddress}}", network), name)
		if err == nil && ip != "" {
			endpoint := "http://" + ip + ":2379"
			resp, err := http.Get(endpoint + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return endpoint
				}
				err = fmt.Errorf("/readyz: %s", resp.Status)
			}
			lastErr = err
		} else {
			lastErr = fmt.Errorf("no address yet (%v)", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	logs, _ := docker(context.Background(), "logs", "--tail", "30", name)
	t.Fatalf("container %s never became ready: %v\n%s", name, lastErr, logs)
	return ""
}

// assertStatic fails unless path is an ELF executable with no dynamic
// loader: the image has nothing else in it.
func assertStatic(t *testing.T, path string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Fatalf("%s is dynamically linked", path)
		}
	}
}

// withoutMakeJobserver drops the variables through which an enclosing make
// (make test) would hand its jobserver to the make this test starts.
func withoutMakeJobserver(env []string) []string {
	var out []string
	for _, kv := range env {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES":
			continue
		}
		out = append(out, kv)
	}
	return out
}

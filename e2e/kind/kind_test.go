// Package kinde2e runs a Kind cluster whose kube-apiserver keeps all its
// state in sett: sett runs as a container named "sett" on the "kind" Docker
// network, the cluster is created from deploy/kind's configurations through
// kind's Go API, and a workload of real pods runs through the cluster's
// kubeconfig. `make e2e-kind` runs it (it builds sett's image and, when
// missing, the offline node image first).
package kinde2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/kind/pkg/cluster"
	kindexec "sigs.k8s.io/kind/pkg/exec"
	kindlog "sigs.k8s.io/kind/pkg/log"
	"sigs.k8s.io/yaml"
)

const (
	// settName is sett's container name: deploy/kind's configurations point
	// kube-apiserver at it, and its server certificate names it.
	settName    = "sett"
	kindNetwork = "kind"
	clusterName = "sett-e2e"
	// ownerLabel marks the containers and networks this suite creates, so a
	// leftover of an interrupted run can be told from someone else's.
	ownerLabel = "dev.sett.e2e=kind"
)

type variant struct {
	name   string
	config string // deploy/kind configuration
	tls    bool
}

var variants = []variant{
	{name: "mtls", config: "../../deploy/kind/kind-mtls.yaml", tls: true},
	{name: "http", config: "../../deploy/kind/kind-http.yaml"},
}

func TestKindOnSett(t *testing.T) {
	nodeImage := envOr("KIND_NODE_IMAGE", "sett.local/kind-node:v1.36.3")
	settImage := envOr("SETT_IMAGE", "sett.local/sett:dev")
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	requireImage(ctx, t, nodeImage, "make kind-node-image")
	requireImage(ctx, t, settImage, "make image")

	var lacksSysResource bool
	if ok, out := privilegedWorks(ctx, nodeImage); !ok {
		missing, err := missingCapabilities()
		if err != nil || len(missing) == 0 {
			t.Fatalf("docker run --privileged fails (%s) and no missing capability explains it (%v)", out, err)
		}
		t.Logf("docker run --privileged fails on this host: %s; the capability bounding set lacks %v", out, missing)
		installDockerShim(t, missing)
		lacksSysResource = slices.Contains(missing, "SYS_RESOURCE")
	}
	cgroupV1 := dockerOut(ctx, t, "info", "-f", "{{.CgroupVersion}}") == "1"
	if driver := dockerOut(ctx, t, "info", "-f", "{{.Driver}}"); driver == "fuse-overlayfs" {
		// kind's entrypoint sees the node's root on FUSE and switches
		// containerd to the fuse-overlayfs snapshotter, which the node image
		// does not carry. containerd's state is on the node's /var volume, a
		// host filesystem where overlayfs works.
		t.Logf("Docker storage driver %s: keeping containerd on overlayfs", driver)
		t.Setenv("KIND_EXPERIMENTAL_CONTAINERD_SNAPSHOTTER", "overlayfs")
	}

	want := strings.Split(envOr("SETT_KIND_VARIANTS", "mtls,http"), ",")
	for _, v := range variants {
		if !contains(want, v.name) {
			continue
		}
		t.Run(v.name, func(t *testing.T) {
			runVariant(ctx, t, v, nodeImage, settImage, hostQuirks{cgroupV1: cgroupV1, lacksSysResource: lacksSysResource})
		})
	}
}

// hostQuirks are the ways this Docker host differs from the one kind
// expects, each needing a setting in the cluster configuration.
type hostQuirks struct {
	cgroupV1         bool // cgroup v1 hierarchy
	lacksSysResource bool // CAP_SYS_RESOURCE outside every bounding set
}

func runVariant(ctx context.Context, t *testing.T, v variant, nodeImage, settImage string, quirks hostQuirks) {
	start := time.Now()
	provider := cluster.NewProvider(cluster.ProviderWithDocker(), cluster.ProviderWithLogger(testLogger{t}))
	// A cluster of this name left by an interrupted run would keep the name.
	// (A kubeconfig path of the test's own: kind would otherwise edit
	// ~/.kube/config.)
	_ = provider.Delete(clusterName, filepath.Join(t.TempDir(), "stale-kubeconfig"))
	ensureNetwork(ctx, t)

	pki := t.TempDir()
	args := []string{"--name=" + settName, "--data-dir=/var/lib/sett"}
	scheme := "http"
	var tlsCfg *tls.Config
	if v.tls {
		writePKI(t, pki)
		tlsCfg = clientTLS(t, pki)
		scheme = "https"
		args = append(args, "--cert-file=/pki/server.crt", "--key-file=/pki/server.key",
			"--trusted-ca-file=/pki/ca.crt", "--client-cert-auth")
	}
	args = append(args, "--listen-client-urls="+scheme+"://0.0.0.0:2379", "--advertise-client-urls="+scheme+"://"+settName+":2379")
	settURL := startSett(ctx, t, settImage, pki, scheme, tlsCfg, args)
	t.Logf("sett ready at %s (%s)", settURL, time.Since(start).Round(time.Second))

	raw := clusterConfig(t, v, pki, quirks)
	t.Logf("kind config:\n%s", raw)
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	retain := os.Getenv("SETT_KIND_RETAIN") != ""
	createStart := time.Now()
	err := provider.Create(clusterName,
		cluster.CreateWithRawConfig(raw),
		cluster.CreateWithNodeImage(nodeImage),
		cluster.CreateWithWaitForReady(5*time.Minute),
		cluster.CreateWithKubeconfigPath(kubeconfig),
		// Kept on failure too, so dumpNode can look inside; the cleanup
		// below deletes it.
		cluster.CreateWithRetain(true),
		cluster.CreateWithDisplayUsage(false),
		cluster.CreateWithDisplaySalutation(false),
	)
	t.Cleanup(func() {
		if t.Failed() {
			dumpNode(t)
		}
		if retain {
			t.Logf("SETT_KIND_RETAIN set: cluster %s and container %s kept", clusterName, settName)
			return
		}
		delStart := time.Now()
		if err := provider.Delete(clusterName, kubeconfig); err != nil {
			t.Errorf("delete cluster: %v", err)
		}
		t.Logf("cluster deleted in %s", time.Since(delStart).Round(time.Second))
	})
	if err != nil {
		if rerr := kindexec.RunErrorForError(err); rerr != nil {
			t.Logf("output of %s:\n%s", rerr.Command, rerr.Output)
		}
		t.Fatalf("kind create: %v", err)
	}
	t.Logf("cluster %s created and ready in %s", clusterName, time.Since(createStart).Round(time.Second))

	kcfg, err := provider.KubeConfig(clusterName, false)
	if err != nil {
		t.Fatal(err)
	}
	rest, err := clientcmd.RESTConfigFromKubeConfig([]byte(kcfg))
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(rest)
	if err != nil {
		t.Fatal(err)
	}
	// The test reads sett by the name kube-apiserver uses (its certificate
	// names no address), dialling the container's address on this host.
	settAddr := strings.TrimPrefix(strings.TrimPrefix(settURL, "https://"), "http://")
	dialSett := func(ctx context.Context, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", settAddr)
	}
	etcd, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{scheme + "://" + settName + ":2379"},
		TLS:         tlsCfg,
		DialTimeout: 5 * time.Second,
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(dialSett)},
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer etcd.Close()

	workStart := time.Now()
	runWorkload(ctx, t, cs, etcd)
	t.Logf("workload checked in %s; variant total %s", time.Since(workStart).Round(time.Second), time.Since(start).Round(time.Second))
}

// clusterConfig is the deploy/kind configuration of v, adjusted to this
// suite's node image and host: the static CNI of the image instead of
// kind's default one, no kube-proxy (the image has none), the PKI directory
// of this run, and what quirks of the host need.
func clusterConfig(t *testing.T, v variant, pki string, quirks hostQuirks) []byte {
	t.Helper()
	raw, err := os.ReadFile(v.config)
	if err != nil {
		t.Fatal(err)
	}
	var cfg v1alpha4.Cluster
	if err := yaml.UnmarshalStrict(raw, &cfg); err != nil {
		t.Fatalf("%s: %v", v.config, err)
	}
	cfg.Networking.DisableDefaultCNI = true
	cfg.Networking.KubeProxyMode = v1alpha4.ProxyMode("none")
	for i := range cfg.Nodes {
		for j, m := range cfg.Nodes[i].ExtraMounts {
			if m.HostPath == "/etc/sett/pki" {
				cfg.Nodes[i].ExtraMounts[j].HostPath = pki
			}
		}
	}
	if quirks.cgroupV1 {
		// Kubernetes 1.35+ refuses cgroup v1 unless told otherwise.
		cfg.KubeadmConfigPatches = append(cfg.KubeadmConfigPatches, "kind: KubeletConfiguration\nfailCgroupV1: false\n")
	}
	if quirks.lacksSysResource {
		// Lowering a process's oom_score_adj takes CAP_SYS_RESOURCE; runc
		// fails to start a pod sandbox (pause asks for -998) without it.
		// containerd then keeps every container's at or above its own.
		cfg.ContainerdConfigPatches = append(cfg.ContainerdConfigPatches,
			"[plugins.\"io.containerd.grpc.v1.cri\"]\n  restrict_oom_score_adj = true\n")
	}
	out, err := yaml.Marshal(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// startSett runs sett's image as the container the cluster uses and waits
// for its /readyz; it returns the client URL reachable from this host.
func startSett(ctx context.Context, t *testing.T, image, pki, scheme string, tlsCfg *tls.Config, args []string) string {
	t.Helper()
	if labels, err := docker(ctx, "inspect", "-f", "{{index .Config.Labels \"dev.sett.e2e\"}}", settName); err == nil {
		if labels != "kind" {
			t.Fatalf("a container named %s exists and is not this suite's; remove it first", settName)
		}
		dockerOut(ctx, t, "rm", "-f", "-v", settName)
	}
	run := append([]string{"run", "-d", "--name", settName, "--label", ownerLabel, "--network", kindNetwork,
		"--volume", pki + ":/pki:ro", image}, args...)
	dockerOut(ctx, t, run...)
	t.Cleanup(func() {
		if os.Getenv("SETT_KIND_RETAIN") != "" {
			return
		}
		if t.Failed() {
			logs, _ := docker(context.Background(), "logs", "--tail", "40", settName)
			t.Logf("sett logs (tail):\n%s", logs)
		}
		_, _ = docker(context.Background(), "rm", "-f", "-v", settName)
	})
	ip := dockerOut(ctx, t, "inspect", "-f", "{{(index .NetworkSettings.Networks \""+kindNetwork+"\").IPAddress}}", settName)
	url := scheme + "://" + ip + ":2379"
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := hc.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url
			}
			err = fmt.Errorf("%s", resp.Status)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			logs, _ := docker(ctx, "logs", "--tail", "30", settName)
			t.Fatalf("sett at %s never ready: %v\n%s", url, err, logs)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// ensureNetwork creates the "kind" network unless it exists (kind uses an
// existing one), so sett can join it before the cluster does.
func ensureNetwork(ctx context.Context, t *testing.T) {
	t.Helper()
	if _, err := docker(ctx, "network", "inspect", kindNetwork); err == nil {
		return
	}
	dockerOut(ctx, t, "network", "create", "--label", ownerLabel, kindNetwork)
	t.Cleanup(func() { _, _ = docker(context.Background(), "network", "rm", kindNetwork) })
}

// dumpNode logs what explains a node that did not come up.
func dumpNode(t *testing.T) {
	node := clusterName + "-control-plane"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, cmd := range [][]string{
		{"systemctl", "--no-pager", "--failed"},
		{"journalctl", "--no-pager", "-n", "40", "-u", "sett-preload-images", "-u", "containerd"},
		{"journalctl", "--no-pager", "-n", "60", "-u", "kubelet"},
		{"ctr", "--namespace", "k8s.io", "tasks", "ls"},
	} {
		out, err := docker(ctx, append([]string{"exec", node}, cmd...)...)
		t.Logf("%s: %s (%v)\n%s", node, strings.Join(cmd, " "), err, out)
	}
}

func requireImage(ctx context.Context, t *testing.T, image, how string) {
	t.Helper()
	if _, err := docker(ctx, "image", "inspect", image); err != nil {
		t.Fatalf("image %s is missing: build it with `%s` (or run `make e2e-kind`)", image, how)
	}
}

func docker(ctx context.Context, args ...string) (string, error) {
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), err
}

func dockerOut(ctx context.Context, t *testing.T, args ...string) string {
	t.Helper()
	out, err := docker(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if strings.TrimSpace(x) == s {
			return true
		}
	}
	return false
}

// testLogger sends kind's progress messages to the test log.
type testLogger struct{ t *testing.T }

func (l testLogger) Warn(m string)                            { l.t.Log("kind: WARNING: " + m) }
func (l testLogger) Warnf(f string, a ...any)                 { l.Warn(fmt.Sprintf(f, a...)) }
func (l testLogger) Error(m string)                           { l.t.Log("kind: ERROR: " + m) }
func (l testLogger) Errorf(f string, a ...any)                { l.Error(fmt.Sprintf(f, a...)) }
func (l testLogger) V(level kindlog.Level) kindlog.InfoLogger { return infoLogger{l.t, level <= 0} }

type infoLogger struct {
	t       *testing.T
	enabled bool
}

func (l infoLogger) Info(m string) {
	if l.enabled {
		l.t.Log("kind: " + m)
	}
}
func (l infoLogger) Infof(f string, a ...any) { l.Info(fmt.Sprintf(f, a...)) }
func (l infoLogger) Enabled() bool            { return l.enabled }

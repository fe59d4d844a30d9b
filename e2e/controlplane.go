package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Binaries are the executables a control plane is made of.
type Binaries struct {
	Store                                             string // etcd or sett
	APIServer, ControllerManager, Scheduler, Kubemark string
}

// PlaneOptions shape one control plane.
type PlaneOptions struct {
	Kind StoreKind
	// MTLS puts the store on mutual TLS (the apiserver presents a client
	// certificate); otherwise the store is plain HTTP.
	MTLS bool
	// CompactionInterval is the apiserver's --etcd-compaction-interval.
	CompactionInterval time.Duration
	// EventTTL is the apiserver's --event-ttl: events live on a lease.
	EventTTL time.Duration
	// Nodes is the number of hollow nodes (kubemark kubelets).
	Nodes int
}

// ControlPlane is a store, kube-apiserver, kube-controller-manager,
// kube-scheduler and hollow nodes, all on 127.0.0.1, authenticating with
// client certificates and authorized by RBAC and the node authorizer.
type ControlPlane struct {
	Opts   PlaneOptions
	Dir    string
	Store  *Store
	Config *rest.Config // system:masters
	Client kubernetes.Interface

	APIServer *Proc
	others    []*Proc // controller manager, scheduler, hollow nodes
	nodes     []*Proc
	// socketsBefore are the fake runtime sockets that existed before the
	// hollow nodes started.
	socketsBefore map[string]bool
}

// StartControlPlane launches everything and waits until the apiserver is
// ready, every hollow node is Ready and the controller manager has created
// the default service account.
func StartControlPlane(ctx context.Context, dir string, bins Binaries, o PlaneOptions) (*ControlPlane, error) {
	pki, err := NewPKI(filepath.Join(dir, "pki"))
	if err != nil {
		return nil, err
	}
	var storePKI *PKI
	if o.MTLS {
		storePKI = pki
	}
	store, err := NewStore(o.Kind, bins.Store, dir, storePKI)
	if err != nil {
		return nil, err
	}
	cp := &ControlPlane{Opts: o, Dir: dir, Store: store}
	if err := store.Start(ctx); err != nil {
		return cp, err
	}
	ports, err := FreePorts(1 + o.Nodes)
	if err != nil {
		return cp, err
	}
	server := fmt.Sprintf("https://127.0.0.1:%d", ports[0])

	saPub, saPriv, err := ServiceAccountKeys(pki.Dir)
	if err != nil {
		return cp, err
	}
	serving, err := pki.Issue("kube-apiserver", "kube-apiserver")
	if err != nil {
		return cp, err
	}
	kubeletClient, err := pki.Issue("kube-apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters")
	if err != nil {
		return cp, err
	}
	args := []string{
		"--etcd-servers=" + store.ClientURL,
		"--secure-port=" + strconv.Itoa(ports[0]), "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--tls-cert-file=" + serving.CertFile, "--tls-private-key-file=" + serving.KeyFile,
		"--client-ca-file=" + pki.CAFile,
		"--kubelet-client-certificate=" + kubeletClient.CertFile, "--kubelet-client-key=" + kubeletClient.KeyFile,
		"--authorization-mode=Node,RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + saPub, "--service-account-signing-key-file=" + saPriv,
		"--service-cluster-ip-range=10.96.0.0/16",
		"--etcd-compaction-interval=" + o.CompactionInterval.String(),
		"--event-ttl=" + o.EventTTL.String(),
	}
	if store.TLS != nil {
		args = append(args, "--etcd-cafile="+store.TLS.CAFile,
			"--etcd-certfile="+store.TLS.Client.CertFile, "--etcd-keyfile="+store.TLS.Client.KeyFile)
	}
	cp.APIServer = NewProc(dir, "kube-apiserver", bins.APIServer, args...)
	// A watch cache that disagrees with the store crashes the apiserver
	// instead of only counting a failed consistency check.
	cp.APIServer.Env = []string{"KUBE_WATCHCACHE_CONSISTENCY_CHECKER=true"}
	if err := cp.APIServer.Start(); err != nil {
		return cp, err
	}

	admin, err := pki.Issue("admin", "e2e-admin", "system:masters")
	if err != nil {
		return cp, err
	}
	cp.Config = &rest.Config{
		Host:            server,
		TLSClientConfig: rest.TLSClientConfig{CAFile: pki.CAFile, CertFile: admin.CertFile, KeyFile: admin.KeyFile},
		QPS:             200, Burst: 400, Timeout: time.Minute,
	}
	if cp.Client, err = kubernetes.NewForConfig(cp.Config); err != nil {
		return cp, err
	}
	if err := cp.waitAPIServer(ctx); err != nil {
		return cp, err
	}

	leader := []string{"--leader-elect=true", "--leader-elect-lease-duration=60s",
		"--leader-elect-renew-deadline=45s", "--leader-elect-retry-period=2s"}
	kcmConfig, err := cp.kubeconfig(pki, "kube-controller-manager", "system:kube-controller-manager")
	if err != nil {
		return cp, err
	}
	cp.start(NewProc(dir, "kube-controller-manager", bins.ControllerManager, append([]string{
		"--kubeconfig=" + kcmConfig, "--authentication-kubeconfig=" + kcmConfig, "--authorization-kubeconfig=" + kcmConfig,
		"--secure-port=0",
		"--use-service-account-credentials=true",
		"--service-account-private-key-file=" + saPriv, "--root-ca-file=" + pki.CAFile,
		"--cluster-name=sett-e2e",
	}, leader...)...))
	schedConfig, err := cp.kubeconfig(pki, "kube-scheduler", "system:kube-scheduler")
	if err != nil {
		return cp, err
	}
	cp.start(NewProc(dir, "kube-scheduler", bins.Scheduler, append([]string{
		"--kubeconfig=" + schedConfig, "--authentication-kubeconfig=" + schedConfig, "--authorization-kubeconfig=" + schedConfig,
		"--secure-port=0",
	}, leader...)...))
	cp.socketsBefore = fakeRuntimeSockets()
	for i := range o.Nodes {
		name := fmt.Sprintf("hollow-node-%d", i)
		cfg, err := cp.kubeconfig(pki, name, "system:node:"+name, "system:nodes")
		if err != nil {
			return cp, err
		}
		node := NewProc(dir, name, bins.Kubemark,
			"--morph=kubelet", "--name="+name, "--kubeconfig="+cfg,
			"--use-host-image-service=false",
			"--kubelet-port="+strconv.Itoa(ports[1+i]), "--kubelet-read-only-port=0",
			"--max-pods=110", "--node-labels=sett.dev/e2e=hollow")
		cp.start(node)
		cp.nodes = append(cp.nodes, node)
	}
	for _, p := range cp.others {
		if err := p.Start(); err != nil {
			return cp, err
		}
	}
	if err := cp.waitNodesReady(ctx); err != nil {
		return cp, err
	}
	return cp, cp.waitDefaultServiceAccount(ctx)
}

func (cp *ControlPlane) start(p *Proc) { cp.others = append(cp.others, p) }

// Procs are every process of the plane, the store first.
func (cp *ControlPlane) Procs() []*Proc {
	ps := []*Proc{cp.Store.Proc()}
	if cp.APIServer != nil {
		ps = append(ps, cp.APIServer)
	}
	return append(ps, cp.others...)
}

// Stop stops the components in reverse order of start, the store last.
func (cp *ControlPlane) Stop() {
	for i := len(cp.others) - 1; i >= 0; i-- {
		cp.others[i].Stop(20 * time.Second)
	}
	if cp.APIServer != nil {
		cp.APIServer.Stop(30 * time.Second)
	}
	cp.Store.Stop()
	for _, n := range cp.nodes {
		removeHollowKubeletFiles(n.Logs())
	}
	if len(cp.nodes) > 0 {
		removeFakeRuntimeSockets(cp.socketsBefore)
	}
}

// Exited names the first process that is no longer running.
func (cp *ControlPlane) Exited() error {
	for _, p := range cp.Procs() {
		if exited, err := p.Exited(); exited {
			return fmt.Errorf("%s exited (%v); log tail:\n%s", p.Name, err, p.Tail(30))
		}
	}
	return nil
}

// kubeconfig writes name.kubeconfig with a client certificate for user cn.
func (cp *ControlPlane) kubeconfig(pki *PKI, name, cn string, groups ...string) (string, error) {
	kp, err := pki.Issue(name, cn, groups...)
	if err != nil {
		return "", err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["e2e"] = &clientcmdapi.Cluster{Server: cp.Config.Host, CertificateAuthority: pki.CAFile}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{ClientCertificate: kp.CertFile, ClientKey: kp.KeyFile}
	cfg.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: name}
	cfg.CurrentContext = "e2e"
	path := filepath.Join(cp.Dir, name+".kubeconfig")
	return path, clientcmd.WriteToFile(*cfg, path)
}

// poll runs cond every interval until it reports done, an error, the
// context ends or a process of the plane exits.
func (cp *ControlPlane) poll(ctx context.Context, what string, timeout, interval time.Duration, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if err := cp.Exited(); err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		done, err := cond(ctx)
		if done {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %v (last error: %v)", what, ctx.Err(), last)
		case <-time.After(interval):
		}
	}
}

func (cp *ControlPlane) waitAPIServer(ctx context.Context) error {
	return cp.poll(ctx, "kube-apiserver /readyz", 3*time.Minute, 500*time.Millisecond, func(ctx context.Context) (bool, error) {
		body, err := cp.Client.CoreV1().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil && string(body) == "ok", err
	})
}

func (cp *ControlPlane) waitNodesReady(ctx context.Context) error {
	return cp.poll(ctx, fmt.Sprintf("%d hollow nodes Ready", cp.Opts.Nodes), 3*time.Minute, time.Second, func(ctx context.Context) (bool, error) {
		nodes, err := cp.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		ready := 0
		for _, n := range nodes.Items {
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		return ready == cp.Opts.Nodes, fmt.Errorf("%d of %d nodes ready", ready, cp.Opts.Nodes)
	})
}

func (cp *ControlPlane) waitDefaultServiceAccount(ctx context.Context) error {
	return cp.poll(ctx, "the default service account", 3*time.Minute, time.Second, func(ctx context.Context) (bool, error) {
		_, err := cp.Client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil, err
	})
}

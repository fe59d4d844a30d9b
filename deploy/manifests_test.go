// Package deploy holds sett's deployment files: the container image
// (Dockerfile), Kubernetes manifests, a systemd unit and Kind cluster
// configurations. Its tests check that those files say what they claim to.
package deploy

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// docs splits a multi-document YAML file and decodes every document.
func docs(t *testing.T, path string) []map[string]any {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for i, part := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(raw), -1) {
		if strings.TrimSpace(stripComments(part)) == "" {
			continue
		}
		var m map[string]any
		if err := yaml.UnmarshalStrict([]byte(part), &m); err != nil {
			t.Fatalf("%s document %d: %v", path, i, err)
		}
		out = append(out, m)
	}
	return out
}

func stripComments(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// at walks m along keys (string keys for maps, int indexes for lists).
func at(t *testing.T, m any, keys ...any) any {
	t.Helper()
	cur := m
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			mm, ok := cur.(map[string]any)
			if !ok {
				t.Fatalf("at %v: %T is not a map", keys, cur)
			}
			cur = mm[k]
		case int:
			l, ok := cur.([]any)
			if !ok || k >= len(l) {
				t.Fatalf("at %v: %T has no index %d", keys, cur, k)
			}
			cur = l[k]
		}
	}
	return cur
}

func byKind(t *testing.T, ds []map[string]any) map[string][]map[string]any {
	t.Helper()
	out := map[string][]map[string]any{}
	for _, d := range ds {
		k, _ := d["kind"].(string)
		out[k] = append(out[k], d)
	}
	return out
}

func TestStatefulSetManifest(t *testing.T) {
	objs := byKind(t, docs(t, "kubernetes/sett.yaml"))
	if len(objs["StatefulSet"]) != 1 || len(objs["Service"]) != 2 || len(objs["PodDisruptionBudget"]) != 1 {
		t.Fatalf("want 1 StatefulSet, 2 Services, 1 PodDisruptionBudget; got %d, %d, %d",
			len(objs["StatefulSet"]), len(objs["Service"]), len(objs["PodDisruptionBudget"]))
	}
	sts := objs["StatefulSet"][0]
	name := at(t, sts, "metadata", "name").(string)
	replicas := int(at(t, sts, "spec", "replicas").(float64))
	if replicas != 3 {
		t.Errorf("replicas = %d, want 3", replicas)
	}
	if p := at(t, sts, "spec", "podManagementPolicy"); p != "Parallel" {
		t.Errorf("podManagementPolicy = %v, want Parallel (members become ready only together)", p)
	}
	podLabels := at(t, sts, "spec", "template", "metadata", "labels").(map[string]any)
	matches := func(sel any) bool {
		sm, _ := sel.(map[string]any)
		if len(sm) == 0 {
			return false
		}
		for k, v := range sm {
			if podLabels[k] != v {
				return false
			}
		}
		return true
	}
	if !matches(at(t, sts, "spec", "selector", "matchLabels")) {
		t.Error("StatefulSet selector does not match its pod labels")
	}

	peerSvc := at(t, sts, "spec", "serviceName").(string)
	var headless map[string]any
	for _, svc := range objs["Service"] {
		if !matches(at(t, svc, "spec", "selector")) {
			t.Errorf("Service %v selects no sett pod", at(t, svc, "metadata", "name"))
		}
		if at(t, svc, "metadata", "name") == peerSvc {
			headless = svc
		}
	}
	if headless == nil {
		t.Fatalf("serviceName %q names no Service", peerSvc)
	}
	if at(t, headless, "spec", "clusterIP") != "None" || at(t, headless, "spec", "publishNotReadyAddresses") != true {
		t.Errorf("peer Service %s must be headless and publish not-ready addresses", peerSvc)
	}
	pdb := objs["PodDisruptionBudget"][0]
	if !matches(at(t, pdb, "spec", "selector", "matchLabels")) {
		t.Error("PodDisruptionBudget selects no sett pod")
	}
	if mu := at(t, pdb, "spec", "maxUnavailable"); mu != float64(1) {
		t.Errorf("PodDisruptionBudget maxUnavailable = %v, want 1 (a quorum of 3 survives one)", mu)
	}

	c := at(t, sts, "spec", "template", "spec", "containers", 0).(map[string]any)
	for probe, path := range map[string]string{"startupProbe": "/livez", "livenessProbe": "/livez", "readinessProbe": "/readyz"} {
		if got := at(t, c, probe, "httpGet", "path"); got != path {
			t.Errorf("%s path = %v, want %s", probe, got, path)
		}
	}
	flags := map[string]string{}
	for _, a := range at(t, c, "args").([]any) {
		k, v, _ := strings.Cut(strings.TrimPrefix(a.(string), "--"), "=")
		flags[k] = v
	}
	// The pod's own name expanded for ordinal i, as the kubelet would.
	expand := func(s string, i int) string {
		s = strings.ReplaceAll(s, "$(POD_NAME)", fmt.Sprintf("%s-%d", name, i))
		return strings.ReplaceAll(s, "$(POD_NAMESPACE)", "ns")
	}
	var want []string
	for i := range replicas {
		host := fmt.Sprintf("%s-%d.%s.ns.svc", name, i, peerSvc)
		want = append(want, fmt.Sprintf("%s-%d=http://%s:2380", name, i, host))
		if got := expand(flags["initial-advertise-peer-urls"], i); got != "http://"+host+":2380" {
			t.Errorf("member %d advertises peer URL %s, want http://%s:2380", i, got, host)
		}
		if got := expand(flags["name"], i); got != fmt.Sprintf("%s-%d", name, i) {
			t.Errorf("member %d --name=%s", i, got)
		}
	}
	if got := expand(flags["initial-cluster"], 0); got != strings.Join(want, ",") {
		t.Errorf("--initial-cluster=%s\nwant          %s", got, strings.Join(want, ","))
	}
	for _, f := range []string{"data-dir", "listen-client-urls", "listen-peer-urls", "advertise-client-urls", "initial-cluster-state", "initial-cluster-token"} {
		if flags[f] == "" {
			t.Errorf("--%s missing", f)
		}
	}
	mount := at(t, c, "volumeMounts", 0, "mountPath")
	if mount != flags["data-dir"] {
		t.Errorf("data volume mounted at %v, --data-dir=%s", mount, flags["data-dir"])
	}
}

func TestKindConfigs(t *testing.T) {
	tests := []struct {
		file      string
		scheme    string
		wantFiles []string // kubeadm's caFile, certFile, keyFile
	}{
		{file: "kind/kind-http.yaml", scheme: "http"},
		{file: "kind/kind-mtls.yaml", scheme: "https", wantFiles: []string{"caFile", "certFile", "keyFile"}},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			ds := docs(t, tt.file)
			if len(ds) != 1 || ds[0]["kind"] != "Cluster" || ds[0]["apiVersion"] != "kind.x-k8s.io/v1alpha4" {
				t.Fatalf("want one kind.x-k8s.io/v1alpha4 Cluster, got %v", ds)
			}
			var external map[string]any
			for _, p := range at(t, ds[0], "kubeadmConfigPatches").([]any) {
				var patch map[string]any
				if err := yaml.UnmarshalStrict([]byte(p.(string)), &patch); err != nil {
					t.Fatalf("patch: %v", err)
				}
				if patch["kind"] == "ClusterConfiguration" {
					external, _ = at(t, patch, "etcd", "external").(map[string]any)
				}
			}
			if external == nil {
				t.Fatal("no ClusterConfiguration patch with etcd.external")
			}
			eps := external["endpoints"].([]any)
			if len(eps) == 0 {
				t.Fatal("no etcd endpoints")
			}
			for _, ep := range eps {
				u, err := url.Parse(ep.(string))
				if err != nil || u.Scheme != tt.scheme || u.Hostname() != "sett" {
					t.Errorf("endpoint %v: want %s://sett:<port>", ep, tt.scheme)
				}
			}
			// Each file kube-apiserver reads must sit in a mount of the node.
			var mounts []string
			for _, n := range at(t, ds[0], "nodes").([]any) {
				if ms, ok := n.(map[string]any)["extraMounts"].([]any); ok {
					for _, m := range ms {
						mounts = append(mounts, m.(map[string]any)["containerPath"].(string))
					}
				}
			}
			for _, key := range tt.wantFiles {
				f, _ := external[key].(string)
				if f == "" {
					t.Errorf("etcd.external.%s missing", key)
					continue
				}
				inMount := false
				for _, m := range mounts {
					inMount = inMount || strings.HasPrefix(f, m+"/")
				}
				if !inMount || !strings.HasPrefix(f, "/etc/kubernetes/pki/") {
					t.Errorf("%s=%s: not under a node mount inside /etc/kubernetes/pki (mounts %v)", key, f, mounts)
				}
			}
		})
	}
}

func TestSystemdUnit(t *testing.T) {
	raw, err := os.ReadFile("systemd/sett.service")
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]map[string][]string{}
	var cur string
	for i, line := range bytes.Split(raw, []byte("\n")) {
		l := strings.TrimSpace(string(line))
		switch {
		case l == "" || strings.HasPrefix(l, "#"):
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			cur = l[1 : len(l)-1]
			sections[cur] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok || cur == "" {
				t.Fatalf("line %d: %q is neither a section nor key=value", i+1, l)
			}
			sections[cur][k] = append(sections[cur][k], v)
		}
	}
	for _, s := range []string{"Unit", "Service", "Install"} {
		if sections[s] == nil {
			t.Errorf("section [%s] missing", s)
		}
	}
	svc := sections["Service"]
	exec := strings.Fields(strings.Join(svc["ExecStart"], " "))
	if len(exec) == 0 || exec[0] != "/usr/local/bin/sett" {
		t.Fatalf("ExecStart = %v", svc["ExecStart"])
	}
	dataDir := ""
	for _, a := range exec[1:] {
		if v, ok := strings.CutPrefix(a, "--data-dir="); ok {
			dataDir = v
		}
	}
	if dataDir != "/var/lib/"+strings.Join(svc["StateDirectory"], "") {
		t.Errorf("--data-dir=%s is not the StateDirectory %v", dataDir, svc["StateDirectory"])
	}
	if strings.Join(svc["ReadWritePaths"], " ") != dataDir {
		t.Errorf("ProtectSystem=strict leaves only %v writable, data dir is %s", svc["ReadWritePaths"], dataDir)
	}
	// sett sends READY=1 once it serves clients (cmd/sett TestReadyNotifyLikeEtcd).
	if got := strings.Join(svc["Type"], ","); got != "notify" {
		t.Errorf("Type = %s, want notify (sett notifies readiness as etcd does)", got)
	}
	if got := sections["Install"]["WantedBy"]; len(got) != 1 || got[0] != "multi-user.target" {
		t.Errorf("WantedBy = %v", got)
	}
}

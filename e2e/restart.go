package e2e

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// snapshot maps kind -> namespace/name -> resource version.
type snapshot map[string]map[string]string

// stable kinds are written only by the workload (or not at all) while the
// store restarts: their resource versions must not change. Kinds that
// controllers and kubelets keep writing must only keep every object.
var stableKinds = map[string]bool{"configmaps": true, "secrets": true, "widgets": true,
	"customresourcedefinitions": true, "clusterroles": true, "deployments": true}

func (w *Workload) snapshot(ctx context.Context) (snapshot, error) {
	all := metav1.ListOptions{}
	lists := map[string]func() (runtime.Object, error){
		"configmaps":  func() (runtime.Object, error) { return w.kube.CoreV1().ConfigMaps("").List(ctx, all) },
		"secrets":     func() (runtime.Object, error) { return w.kube.CoreV1().Secrets("").List(ctx, all) },
		"widgets":     func() (runtime.Object, error) { return w.dyn.Resource(widgetGVR).List(ctx, all) },
		"namespaces":  func() (runtime.Object, error) { return w.kube.CoreV1().Namespaces().List(ctx, all) },
		"deployments": func() (runtime.Object, error) { return w.kube.AppsV1().Deployments("").List(ctx, all) },
		"replicasets": func() (runtime.Object, error) { return w.kube.AppsV1().ReplicaSets("").List(ctx, all) },
		"pods":        func() (runtime.Object, error) { return w.kube.CoreV1().Pods("").List(ctx, all) },
		"nodes":       func() (runtime.Object, error) { return w.kube.CoreV1().Nodes().List(ctx, all) },
		"serviceaccounts": func() (runtime.Object, error) {
			return w.kube.CoreV1().ServiceAccounts("").List(ctx, all)
		},
		"clusterroles": func() (runtime.Object, error) { return w.kube.RbacV1().ClusterRoles().List(ctx, all) },
		"customresourcedefinitions": func() (runtime.Object, error) {
			return w.ext.ApiextensionsV1().CustomResourceDefinitions().List(ctx, all)
		},
	}
	snap := snapshot{}
	for kind, list := range lists {
		obj, err := list()
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", kind, err)
		}
		keys, _, err := listKeys(obj)
		if err != nil {
			return nil, err
		}
		snap[kind] = map[string]string{}
		for _, k := range keys {
			name, rv, _ := strings.Cut(k, "@")
			snap[kind][name] = rv
		}
	}
	return snap, nil
}

// RestartStore stops the store with SIGTERM in the middle of the run and
// starts it again on the same data dir. Every object listed before must be
// listed after, stable kinds at the same resource version. It returns the
// byte range of the apiserver log that covers the outage, where storage
// errors are expected.
func (w *Workload) RestartStore(ctx context.Context) ([2]int, error) {
	var window [2]int
	before, err := w.snapshot(ctx)
	if err != nil {
		return window, err
	}
	window[0] = len(w.cp.APIServer.Logs())
	err = w.Timings.Time("store-restart", func() error {
		if err := w.cp.Store.Restart(ctx); err != nil {
			return err
		}
		w.mu.Lock()
		w.lastRestart = time.Now()
		w.mu.Unlock()
		return w.cp.waitAPIServer(ctx)
	})
	if err != nil {
		return window, err
	}
	var after snapshot
	// Reads right after the outage may still fail while clients reconnect.
	err = eventually(ctx, "a full listing after the restart", time.Minute, func(ctx context.Context) (bool, error) {
		after, err = w.snapshot(ctx)
		return err == nil, err
	})
	if err != nil {
		return window, err
	}
	// Errors logged while the apiserver's clients reconnect belong to the
	// outage too.
	time.Sleep(10 * time.Second)
	window[1] = len(w.cp.APIServer.Logs())
	return window, compareSnapshots(before, after)
}

func compareSnapshots(before, after snapshot) error {
	var problems []string
	for kind, objs := range before {
		for key, rv := range objs {
			if strings.HasPrefix(key, "/tmp-") || strings.HasPrefix(key, "tmp-") {
				continue // namespaces being deleted may finish meanwhile
			}
			got, ok := after[kind][key]
			switch {
			case !ok:
				problems = append(problems, fmt.Sprintf("%s %s (rv %s) missing after the restart", kind, key, rv))
			case stableKinds[kind] && got != rv:
				problems = append(problems, fmt.Sprintf("%s %s at rv %s before the restart, %s after", kind, key, rv, got))
			}
		}
	}
	sort.Strings(problems)
	if len(problems) > 0 {
		return fmt.Errorf("%d objects changed by the store restart: %s", len(problems), strings.Join(problems[:min(len(problems), 20)], "; "))
	}
	return nil
}

package e2e

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// seqKey is the data key of the configmaps whose every update the informer
// must see: each update adds one to it.
const seqKey = "seq"

// Watchers are shared informers over the kinds the workload changes. The
// configmap informer checks that it sees every change of a counted
// configmap: an update that skips a sequence number is a missed event.
type Watchers struct {
	factory  informers.SharedInformerFactory
	dynamic  dynamicinformer.DynamicSharedInformerFactory
	Informed map[string]cache.SharedIndexInformer
	lists    map[string]func(context.Context) ([]runtime.Object, error)

	mu      sync.Mutex
	seq     map[string]int // namespace/name -> last seq seen
	gaps    []string
	events  int
	deletes int
}

// NewWatchers sets up informers for configmaps, secrets, pods, deployments,
// events and the custom resource gvr; Start runs them.
func NewWatchers(kube kubernetes.Interface, dyn dynamic.Interface, gvr schema.GroupVersionResource) *Watchers {
	w := &Watchers{
		factory:  informers.NewSharedInformerFactory(kube, 0),
		dynamic:  dynamicinformer.NewDynamicSharedInformerFactory(dyn, 0),
		Informed: map[string]cache.SharedIndexInformer{},
		lists:    map[string]func(context.Context) ([]runtime.Object, error){},
		seq:      map[string]int{},
	}
	all := metav1.ListOptions{}
	w.Informed["configmaps"] = w.factory.Core().V1().ConfigMaps().Informer()
	w.lists["configmaps"] = func(ctx context.Context) ([]runtime.Object, error) {
		l, err := kube.CoreV1().ConfigMaps("").List(ctx, all)
		return items(l, err)
	}
	w.Informed["secrets"] = w.factory.Core().V1().Secrets().Informer()
	w.lists["secrets"] = func(ctx context.Context) ([]runtime.Object, error) {
		l, err := kube.CoreV1().Secrets("").List(ctx, all)
		return items(l, err)
	}
	w.Informed["pods"] = w.factory.Core().V1().Pods().Informer()
	w.lists["pods"] = func(ctx context.Context) ([]runtime.Object, error) {
		l, err := kube.CoreV1().Pods("").List(ctx, all)
		return items(l, err)
	}
	w.Informed["deployments"] = w.factory.Apps().V1().Deployments().Informer()
	w.lists["deployments"] = func(ctx context.Context) ([]runtime.Object, error) {
		l, err := kube.AppsV1().Deployments("").List(ctx, all)
		return items(l, err)
	}
	w.Informed["events"] = w.factory.Core().V1().Events().Informer()
	w.lists["events"] = func(ctx context.Context) ([]runtime.Object, error) {
		l, err := kube.CoreV1().Events("").List(ctx, all)
		return items(l, err)
	}
	w.Informed[gvr.Resource] = w.dynamic.ForResource(gvr).Informer()
	w.lists[gvr.Resource] = func(ctx context.Context) ([]runtime.Object, error) {
		l, err := dyn.Resource(gvr).List(ctx, all)
		return items(l, err)
	}
	w.Informed["configmaps"].AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.observe(obj, false) },
		UpdateFunc: func(_, obj any) { w.observe(obj, false) },
		DeleteFunc: func(obj any) { w.observe(obj, true) },
	})
	return w
}

func items(list runtime.Object, err error) ([]runtime.Object, error) {
	if err != nil {
		return nil, err
	}
	return meta.ExtractList(list)
}

// observe follows the sequence number of counted configmaps.
func (w *Watchers) observe(obj any, deleted bool) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		w.mu.Lock()
		w.gaps = append(w.gaps, fmt.Sprintf("deletion of %s seen only on relist", d.Key))
		w.mu.Unlock()
		return
	}
	cm, ok := obj.(*corev1.ConfigMap)
	if !ok {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.events++
	key := cm.Namespace + "/" + cm.Name
	if deleted {
		w.deletes++
		delete(w.seq, key)
		return
	}
	s, ok := cm.Data[seqKey]
	if !ok {
		return
	}
	n, _ := strconv.Atoi(s)
	prev, seen := w.seq[key]
	switch {
	case !seen && n != 0:
		w.gaps = append(w.gaps, fmt.Sprintf("%s first seen at seq %d", key, n))
	case seen && n != prev && n != prev+1:
		w.gaps = append(w.gaps, fmt.Sprintf("%s went from seq %d to %d", key, prev, n))
	}
	w.seq[key] = n
}

// Start runs the informers and waits for their first sync.
func (w *Watchers) Start(ctx context.Context) error {
	w.factory.Start(ctx.Done())
	w.dynamic.Start(ctx.Done())
	for name, inf := range w.Informed {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		ok := cache.WaitForCacheSync(sctx.Done(), inf.HasSynced)
		cancel()
		if !ok {
			return fmt.Errorf("informer %s did not sync", name)
		}
	}
	return nil
}

// Gaps are the changes the configmap informer missed, and how many events
// it handled.
func (w *Watchers) Gaps() (gaps []string, events, deletes int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.gaps...), w.events, w.deletes
}

// Converged waits until every informer's cache holds exactly the objects
// (name and resource version) of a fresh list, and returns the differences
// left when timeout runs out.
func (w *Watchers) Converged(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	names := make([]string, 0, len(w.Informed))
	for name := range w.Informed {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		for {
			diff, n, err := w.diff(ctx, name)
			if err == nil && diff == "" {
				if n == 0 && name != "events" {
					return fmt.Errorf("informer %s: fresh list is empty", name)
				}
				break
			}
			if time.Now().After(deadline) {
				if err != nil {
					return fmt.Errorf("informer %s: %w", name, err)
				}
				return fmt.Errorf("informer %s differs from a fresh list: %s", name, diff)
			}
			time.Sleep(time.Second)
		}
	}
	return nil
}

// diff compares one informer's cache with a fresh list.
func (w *Watchers) diff(ctx context.Context, name string) (string, int, error) {
	objs, err := w.lists[name](ctx)
	if err != nil {
		return "", 0, err
	}
	fresh := map[string]string{}
	for _, o := range objs {
		m, err := meta.Accessor(o)
		if err != nil {
			return "", 0, err
		}
		fresh[m.GetNamespace()+"/"+m.GetName()] = m.GetResourceVersion()
	}
	cached := map[string]string{}
	for _, o := range w.Informed[name].GetStore().List() {
		m, err := meta.Accessor(o)
		if err != nil {
			return "", 0, err
		}
		cached[m.GetNamespace()+"/"+m.GetName()] = m.GetResourceVersion()
	}
	var diffs []string
	for k, rv := range fresh {
		if c, ok := cached[k]; !ok {
			diffs = append(diffs, k+" missing from cache")
		} else if c != rv {
			diffs = append(diffs, fmt.Sprintf("%s at rv %s in cache, %s listed", k, c, rv))
		}
	}
	for k := range cached {
		if _, ok := fresh[k]; !ok {
			diffs = append(diffs, k+" in cache only")
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 10 {
		diffs = append(diffs[:10], fmt.Sprintf("... %d more", len(diffs)-10))
	}
	if len(diffs) == 0 {
		return "", len(fresh), nil
	}
	return fmt.Sprint(diffs), len(fresh), nil
}

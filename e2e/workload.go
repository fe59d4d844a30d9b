package e2e

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// Size is how many objects of each kind one workload round writes.
type Size struct {
	ConfigMaps int // created, updated twice, every fifth deleted
	Secrets    int // created, updated, every third deleted
	Widgets    int // custom objects: created, spec and status updated, every fourth deleted
	Finalized  int // configmaps deleted while a finalizer holds them
	Events     int // events that expire with the apiserver's --event-ttl
	Replicas   int // the round's deployment is scaled up to this, then down to 2
	PageSize   int // limit of the paged lists
}

// Workload drives a control plane the way clusters use it, one round
// after another, each in its own namespace, timing every phase.
type Workload struct {
	cp      *ControlPlane
	kube    kubernetes.Interface
	dyn     dynamic.Interface
	ext     apiextensionsclient.Interface
	size    Size
	Timings *Timings
	Watch   *Watchers

	mu            sync.Mutex
	events        []eventRecord
	lastRestart   time.Time // when the store last came back
	deployments   []string  // namespaces whose deployment still exists
	tmpNamespaces []string  // deleted namespaces that must disappear
}

type eventRecord struct {
	namespace, name string
	created         time.Time
}

var widgetGVR = schema.GroupVersionResource{Group: "e2e.sett.dev", Version: "v1", Resource: "widgets"}

// NewWorkload connects to the control plane; Setup must run before rounds.
func NewWorkload(cp *ControlPlane, size Size) (*Workload, error) {
	dyn, err := dynamic.NewForConfig(cp.Config)
	if err != nil {
		return nil, err
	}
	ext, err := apiextensionsclient.NewForConfig(cp.Config)
	if err != nil {
		return nil, err
	}
	return &Workload{cp: cp, kube: cp.Client, dyn: dyn, ext: ext, size: size,
		Timings: NewTimings()}, nil
}

// Setup creates the custom resource definition and starts the informers.
func (w *Workload) Setup(ctx context.Context) error {
	if err := w.Timings.Time("crd", func() error { return w.createCRD(ctx) }); err != nil {
		return err
	}
	w.Watch = NewWatchers(w.kube, w.dyn, widgetGVR)
	return w.Timings.Time("informers-sync", func() error { return w.Watch.Start(ctx) })
}

// Round runs every phase once in namespace wl-<n>.
func (w *Workload) Round(ctx context.Context, n int) error {
	ns := fmt.Sprintf("wl-%03d", n)
	phases := []struct {
		name string
		run  func(context.Context, string) error
	}{
		{"namespaces", w.namespaces},
		{"configmaps", w.configMaps},
		{"secrets", w.secrets},
		{"custom-objects", w.widgets},
		{"deployment-scale-up", w.scaleUp},
		{"rolling-update", w.rollingUpdate},
		{"deployment-scale-down", w.scaleDown},
		{"cascading-delete", w.cascadingDelete},
		{"finalizers", w.finalizers},
		{"events", w.createEvents},
		{"paged-lists", w.pagedLists},
		{"server-side-apply", w.serverSideApply},
	}
	for _, p := range phases {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := w.cp.Exited(); err != nil {
			return err
		}
		if err := w.Timings.Time(p.name, func() error { return p.run(ctx, ns) }); err != nil {
			return fmt.Errorf("round %d, %s: %w", n, p.name, err)
		}
	}
	return nil
}

// parallel runs f(i) for i in [0, n) on a few workers and returns the
// first error.
func parallel(n int, f func(i int) error) error {
	const workers = 8
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		next = make(chan int)
	)
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return errors.Join(errs...)
}

// eventually polls cond every interval until it holds or timeout passes.
func eventually(ctx context.Context, what string, timeout time.Duration, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		ok, err := cond(ctx)
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: not within %v (last: %v)", what, timeout, last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

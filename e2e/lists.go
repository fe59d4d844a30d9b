package e2e

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// lister lists one kind across all namespaces.
type lister func(context.Context, metav1.ListOptions) (runtime.Object, error)

// pagedLists reads configmaps and custom objects page by page while a
// write lands between pages: the pages, all read at the first page's
// resource version, must together equal one list at exactly that version.
func (w *Workload) pagedLists(ctx context.Context, ns string) error {
	late := 0
	between := func(ctx context.Context) error {
		late++
		_, err := w.kube.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("late-%d", late)}}, metav1.CreateOptions{})
		return err
	}
	configMaps := func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
		return w.kube.CoreV1().ConfigMaps("").List(ctx, o)
	}
	widgets := func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
		return w.dyn.Resource(widgetGVR).List(ctx, o)
	}
	if err := pagedEqualsExact(ctx, "configmaps", configMaps, w.size.PageSize, between); err != nil {
		return err
	}
	return pagedEqualsExact(ctx, "widgets", widgets, w.size.PageSize, between)
}

func pagedEqualsExact(ctx context.Context, what string, list lister, limit int, between func(context.Context) error) error {
	var paged []string
	firstRV, cont := "", ""
	for page := 0; ; page++ {
		obj, err := list(ctx, metav1.ListOptions{Limit: int64(limit), Continue: cont})
		if err != nil {
			return fmt.Errorf("%s page %d: %w", what, page, err)
		}
		keys, lm, err := listKeys(obj)
		if err != nil {
			return err
		}
		if len(keys) > limit {
			return fmt.Errorf("%s page %d: %d items over the limit of %d", what, page, len(keys), limit)
		}
		paged = append(paged, keys...)
		if page == 0 {
			firstRV = lm.GetResourceVersion()
			if err := between(ctx); err != nil {
				return err
			}
		} else if lm.GetResourceVersion() != firstRV {
			return fmt.Errorf("%s page %d at resource version %s, first page at %s", what, page, lm.GetResourceVersion(), firstRV)
		}
		if cont = lm.GetContinue(); cont == "" {
			break
		}
	}
	obj, err := list(ctx, metav1.ListOptions{ResourceVersion: firstRV, ResourceVersionMatch: metav1.ResourceVersionMatchExact})
	if err != nil {
		return fmt.Errorf("%s at exact resource version %s: %w", what, firstRV, err)
	}
	exact, _, err := listKeys(obj)
	if err != nil {
		return err
	}
	if fmt.Sprint(paged) != fmt.Sprint(exact) {
		return fmt.Errorf("%s: %d items in pages of %d, %d in one list at resource version %s; first difference %s",
			what, len(paged), limit, len(exact), firstRV, firstDifference(paged, exact))
	}
	return nil
}

// listKeys returns namespace/name@resourceVersion of each item, and the
// list's metadata.
func listKeys(obj runtime.Object) ([]string, metav1.ListInterface, error) {
	lm, err := meta.ListAccessor(obj)
	if err != nil {
		return nil, nil, err
	}
	objs, err := meta.ExtractList(obj)
	if err != nil {
		return nil, nil, err
	}
	keys := make([]string, 0, len(objs))
	for _, o := range objs {
		m, err := meta.Accessor(o)
		if err != nil {
			return nil, nil, err
		}
		keys = append(keys, m.GetNamespace()+"/"+m.GetName()+"@"+m.GetResourceVersion())
	}
	return keys, lm, nil
}

func firstDifference(a, b []string) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("at %d: %q vs %q", i, a[i], b[i])
		}
	}
	return fmt.Sprintf("one is a prefix of the other (%d vs %d)", len(a), len(b))
}

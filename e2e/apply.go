package e2e

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
)

// serverSideApply has two field managers apply the same configmap: the
// second one conflicts on a field the first owns until it forces, then each
// owns its fields. A custom object is applied twice, the second time
// changing one field.
func (w *Workload) serverSideApply(ctx context.Context, ns string) error {
	cms := w.kube.CoreV1().ConfigMaps(ns)
	first := corev1ac.ConfigMap("applied", ns).WithData(map[string]string{"a": "1", "b": "1"})
	if _, err := cms.Apply(ctx, first, metav1.ApplyOptions{FieldManager: "e2e-a"}); err != nil {
		return err
	}
	second := corev1ac.ConfigMap("applied", ns).WithData(map[string]string{"a": "2"})
	if _, err := cms.Apply(ctx, second, metav1.ApplyOptions{FieldManager: "e2e-b"}); !apierrors.IsConflict(err) {
		return fmt.Errorf("apply of a field another manager owns: want a conflict, got %v", err)
	}
	got, err := cms.Apply(ctx, second, metav1.ApplyOptions{FieldManager: "e2e-b", Force: true})
	if err != nil {
		return err
	}
	if got.Data["a"] != "2" || got.Data["b"] != "1" {
		return fmt.Errorf("after a forced apply: data %v, want a=2 b=1", got.Data)
	}
	managers := map[string]bool{}
	for _, f := range got.ManagedFields {
		if f.Operation == metav1.ManagedFieldsOperationApply {
			managers[f.Manager] = true
		}
	}
	if !managers["e2e-a"] || !managers["e2e-b"] {
		return fmt.Errorf("managed fields %v, want appliers e2e-a and e2e-b", managers)
	}

	res := w.dyn.Resource(widgetGVR).Namespace(ns)
	for size := int64(1); size <= 2; size++ {
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": widgetGVR.GroupVersion().String(), "kind": "Widget",
			"metadata": map[string]any{"name": "applied"},
			"spec":     map[string]any{"size": size, "color": "green"},
		}}
		got, err := res.Apply(ctx, "applied", u, metav1.ApplyOptions{FieldManager: "e2e-a"})
		if err != nil {
			return err
		}
		if s, _, _ := unstructured.NestedInt64(got.Object, "spec", "size"); s != size {
			return fmt.Errorf("applied widget has size %d, want %d", s, size)
		}
	}
	return nil
}

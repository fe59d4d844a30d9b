package e2e

import (
	"context"
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func (w *Workload) namespaces(ctx context.Context, ns string) error {
	if _, err := w.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	// A namespace with content, deleted at once: the namespace controller
	// empties it and removes its finalizer; checked at the end of the run.
	tmp := "tmp-" + ns
	if _, err := w.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: tmp}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	if err := parallel(5, func(i int) error {
		_, err := w.kube.CoreV1().ConfigMaps(tmp).Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("doomed-%d", i)}, Data: map[string]string{"i": strconv.Itoa(i)}}, metav1.CreateOptions{})
		return err
	}); err != nil {
		return err
	}
	w.mu.Lock()
	w.tmpNamespaces = append(w.tmpNamespaces, tmp)
	w.mu.Unlock()
	return w.kube.CoreV1().Namespaces().Delete(ctx, tmp, metav1.DeleteOptions{})
}

// configMaps creates counted configmaps, updates each twice with a guarded
// update (the resource version of the last write), then deletes every fifth.
func (w *Workload) configMaps(ctx context.Context, ns string) error {
	cms := w.kube.CoreV1().ConfigMaps(ns)
	return parallel(w.size.ConfigMaps, func(i int) error {
		cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%03d", i)},
			Data: map[string]string{seqKey: "0", "payload": fmt.Sprintf("%0128d", i)}}, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		stale := cm.DeepCopy()
		for s := 1; s <= 2; s++ {
			cm.Data[seqKey] = strconv.Itoa(s)
			if cm, err = cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
				return err
			}
		}
		stale.Data[seqKey] = "99"
		if _, err := cms.Update(ctx, stale, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
			return fmt.Errorf("update of %s at a stale resource version: want a conflict, got %v", stale.Name, err)
		}
		if i%5 == 0 {
			return cms.Delete(ctx, cm.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &cm.ResourceVersion}})
		}
		return nil
	})
}

func (w *Workload) secrets(ctx context.Context, ns string) error {
	secrets := w.kube.CoreV1().Secrets(ns)
	return parallel(w.size.Secrets, func(i int) error {
		s, err := secrets.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("secret-%03d", i)},
			Data: map[string][]byte{"token": []byte(fmt.Sprintf("token-%d", i))}}, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		s.Data["token"] = []byte(fmt.Sprintf("rotated-%d", i))
		if s, err = secrets.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
			return err
		}
		if i%3 == 0 {
			return secrets.Delete(ctx, s.Name, metav1.DeleteOptions{})
		}
		return nil
	})
}

func (w *Workload) createCRD(ctx context.Context) error {
	crd := &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: widgetGVR.Resource + "." + widgetGVR.Group},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: widgetGVR.Group,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "widgets", Singular: "widget", Kind: "Widget", ListKind: "WidgetList"},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: widgetGVR.Version, Served: true, Storage: true,
				Subresources: &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}},
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object",
					Properties: map[string]apiextensionsv1.JSONSchemaProps{
						"spec": {Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
							"size": {Type: "integer"}, "color": {Type: "string"}}},
						"status": {Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
							"observed": {Type: "integer"}}},
					},
				}},
			}},
		},
	}
	crds := w.ext.ApiextensionsV1().CustomResourceDefinitions()
	if _, err := crds.Create(ctx, crd, metav1.CreateOptions{}); err != nil {
		return err
	}
	return eventually(ctx, "CRD established", 2*time.Minute, func(ctx context.Context) (bool, error) {
		got, err := crds.Get(ctx, crd.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range got.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				// The resource is served once discovery has it.
				_, err := w.dyn.Resource(widgetGVR).List(ctx, metav1.ListOptions{Limit: 1})
				return err == nil, err
			}
		}
		return false, nil
	})
}

// widgets creates custom objects, updates their spec and then their status
// through the status subresource, and deletes every fourth.
func (w *Workload) widgets(ctx context.Context, ns string) error {
	res := w.dyn.Resource(widgetGVR).Namespace(ns)
	return parallel(w.size.Widgets, func(i int) error {
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": widgetGVR.GroupVersion().String(), "kind": "Widget",
			"metadata": map[string]any{"name": fmt.Sprintf("widget-%03d", i)},
			"spec":     map[string]any{"size": int64(i), "color": "blue"},
		}}
		u, err := res.Create(ctx, u, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		if err := unstructured.SetNestedField(u.Object, int64(i+1), "spec", "size"); err != nil {
			return err
		}
		if u, err = res.Update(ctx, u, metav1.UpdateOptions{}); err != nil {
			return err
		}
		if err := unstructured.SetNestedField(u.Object, u.GetGeneration(), "status", "observed"); err != nil {
			return err
		}
		if u, err = res.UpdateStatus(ctx, u, metav1.UpdateOptions{}); err != nil {
			return err
		}
		if i%4 == 0 {
			return res.Delete(ctx, u.GetName(), metav1.DeleteOptions{})
		}
		return nil
	})
}

// finalizers deletes configmaps a finalizer holds: each must stay, marked
// for deletion, until the finalizer is removed, then disappear.
func (w *Workload) finalizers(ctx context.Context, ns string) error {
	const finalizer = "e2e.sett.dev/hold"
	cms := w.kube.CoreV1().ConfigMaps(ns)
	return parallel(w.size.Finalized, func(i int) error {
		name := fmt.Sprintf("held-%03d", i)
		if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Finalizers: []string{finalizer}}}, metav1.CreateOptions{}); err != nil {
			return err
		}
		if err := cms.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			return err
		}
		held, err := cms.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("%s gone while its finalizer holds it: %w", name, err)
		}
		if held.DeletionTimestamp == nil {
			return fmt.Errorf("%s deleted but has no deletionTimestamp", name)
		}
		held.Finalizers = nil
		if _, err := cms.Update(ctx, held, metav1.UpdateOptions{}); err != nil {
			return err
		}
		if _, err := cms.Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("%s still there after its finalizer was removed: %v", name, err)
		}
		return nil
	})
}

// createEvents writes events; the apiserver stores them on a lease of
// --event-ttl, so the store must delete them on time (checked at the end).
func (w *Workload) createEvents(ctx context.Context, ns string) error {
	return parallel(w.size.Events, func(i int) error {
		start := time.Now()
		now := metav1.Now()
		ev, err := w.kube.CoreV1().Events(ns).Create(ctx, &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Name: fmt.Sprintf("e2e-event-%03d", i)},
			InvolvedObject: corev1.ObjectReference{Kind: "ConfigMap", Namespace: ns, Name: fmt.Sprintf("cm-%03d", i), APIVersion: "v1"},
			Reason:         "E2E", Message: "workload event", Type: corev1.EventTypeNormal,
			FirstTimestamp: now, LastTimestamp: now, Count: 1, Source: corev1.EventSource{Component: "sett-e2e"},
		}, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		w.mu.Lock()
		w.events = append(w.events, eventRecord{namespace: ns, name: ev.Name, created: start})
		w.mu.Unlock()
		return nil
	})
}

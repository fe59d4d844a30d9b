package e2e

import (
	"context"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

const deployment = "web"

// rolloutTimeout bounds every wait on controllers, scheduler and kubelets:
// they run on a shared, loaded machine.
const rolloutTimeout = 4 * time.Minute

func (w *Workload) scaleUp(ctx context.Context, ns string) error {
	zero, no := int64(0), false
	replicas := int32(2)
	labels := map[string]string{"app": deployment}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: deployment},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers:                    []corev1.Container{{Name: "pause", Image: "registry.k8s.io/pause:3.10"}},
					NodeSelector:                  map[string]string{"sett.dev/e2e": "hollow"},
					TerminationGracePeriodSeconds: &zero,
					AutomountServiceAccountToken:  &no,
				},
			},
		},
	}
	if _, err := w.kube.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		return err
	}
	w.mu.Lock()
	w.deployments = append(w.deployments, ns)
	w.mu.Unlock()
	if err := w.waitRollout(ctx, ns, 2); err != nil {
		return err
	}
	return w.scale(ctx, ns, int32(w.size.Replicas))
}

func (w *Workload) rollingUpdate(ctx context.Context, ns string) error {
	patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"e2e.sett.dev/revision":%q}}}}}`, time.Now().Format(time.RFC3339Nano))
	if _, err := w.kube.AppsV1().Deployments(ns).Patch(ctx, deployment, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		return err
	}
	return w.waitRollout(ctx, ns, int32(w.size.Replicas))
}

func (w *Workload) scaleDown(ctx context.Context, ns string) error { return w.scale(ctx, ns, 2) }

// scale sets the deployment's replicas through the scale subresource and
// waits until exactly that many pods run.
func (w *Workload) scale(ctx context.Context, ns string, replicas int32) error {
	deps := w.kube.AppsV1().Deployments(ns)
	if _, err := deps.UpdateScale(ctx, deployment, &autoscalingv1.Scale{
		ObjectMeta: metav1.ObjectMeta{Name: deployment, Namespace: ns},
		Spec:       autoscalingv1.ScaleSpec{Replicas: replicas},
	}, metav1.UpdateOptions{}); err != nil {
		return err
	}
	return w.waitRollout(ctx, ns, replicas)
}

// waitRollout waits until the deployment's current template runs with
// the given number of replicas, each a Running pod on a hollow node, and no
// other pod is left.
func (w *Workload) waitRollout(ctx context.Context, ns string, replicas int32) error {
	return eventually(ctx, fmt.Sprintf("deployment %s/%s at %d replicas", ns, deployment, replicas), rolloutTimeout, func(ctx context.Context) (bool, error) {
		d, err := w.kube.AppsV1().Deployments(ns).Get(ctx, deployment, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		st := d.Status
		if st.ObservedGeneration < d.Generation || st.UpdatedReplicas != replicas || st.Replicas != replicas || st.AvailableReplicas != replicas {
			return false, fmt.Errorf("status %+v", st)
		}
		pods, err := w.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + deployment})
		if err != nil {
			return false, err
		}
		running := 0
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && strings.HasPrefix(p.Spec.NodeName, "hollow-node-") {
				running++
			}
		}
		return running == int(replicas) && len(pods.Items) == int(replicas),
			fmt.Errorf("%d pods, %d running on hollow nodes", len(pods.Items), running)
	})
}

// cascadingDelete deletes the deployment of two rounds ago in the
// foreground: it stays, held by the garbage collector's finalizer, until
// its replica sets and pods are gone.
func (w *Workload) cascadingDelete(ctx context.Context, _ string) error {
	w.mu.Lock()
	if len(w.deployments) < 3 {
		w.mu.Unlock()
		return nil
	}
	ns := w.deployments[0]
	w.deployments = w.deployments[1:]
	w.mu.Unlock()
	foreground := metav1.DeletePropagationForeground
	deps := w.kube.AppsV1().Deployments(ns)
	if err := deps.Delete(ctx, deployment, metav1.DeleteOptions{PropagationPolicy: &foreground}); err != nil {
		return err
	}
	return eventually(ctx, "foreground deletion of "+ns+"/"+deployment, rolloutTimeout, func(ctx context.Context) (bool, error) {
		_, err := deps.Get(ctx, deployment, metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			return false, err
		}
		rs, err := w.kube.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		pods, err := w.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		if len(rs.Items)+len(pods.Items) > 0 {
			return false, fmt.Errorf("deployment gone but %d replica sets and %d pods left", len(rs.Items), len(pods.Items))
		}
		return true, nil
	})
}

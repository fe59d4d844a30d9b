package kinde2e

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

const (
	workloadImage = "sett.local/workload:e2e" // preloaded in the node image
	namespace     = "sett-e2e"
	// Kubernetes' protobuf storage encoding starts every value with this.
	k8sProtoMagic = "k8s\x00"
)

// runWorkload runs real pods through the cluster and checks what they did,
// and that the objects behind them are the ones stored in sett:
//
//   - a Deployment of 2 HTTP servers that read a ConfigMap volume becomes
//     available (scheduler, kubelet, CNI, probes, status updates);
//   - a Job fetches from each server's pod IP and completes; its log names
//     every server and carries the ConfigMap's message (pod networking,
//     volumes, logs through the kubelet);
//   - sett holds each pod under /registry/pods/<namespace>/<name>;
//   - scaling to 3 adds a pod, foreground deletion of the Deployment removes
//     every pod through the garbage collector, and the keys leave sett.
func runWorkload(ctx context.Context, t *testing.T, cs kubernetes.Interface, etcd *clientv3.Client) {
	message := fmt.Sprintf("stored in sett at %d", time.Now().UnixNano())
	mustCreate(t, func() error {
		_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{})
		return err
	})
	// The namespace's default ServiceAccount must exist before pods are
	// admitted.
	poll(ctx, t, "default ServiceAccount", time.Minute, func() (bool, error) {
		_, err := cs.CoreV1().ServiceAccounts(namespace).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, ignoreNotFound(err)
	})
	mustCreate(t, func() error {
		_, err := cs.CoreV1().ConfigMaps(namespace).Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: "message"},
			Data:       map[string]string{"message": message},
		}, metav1.CreateOptions{})
		return err
	})

	labels := map[string]string{"app": "web"}
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: new(int32(2)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{
						Name:            "web",
						Image:           workloadImage,
						ImagePullPolicy: corev1.PullNever,
						Command:         []string{"/usr/local/bin/workload", "serve", "-addr", ":8080", "-file", "/config/message"},
						Ports:           []corev1.ContainerPort{{ContainerPort: 8080}},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
							PeriodSeconds: 2,
						},
						VolumeMounts: []corev1.VolumeMount{{Name: "config", MountPath: "/config"}},
					}},
					Volumes: []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{
						ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "message"}},
					}}},
				},
			},
		},
	}
	mustCreate(t, func() error {
		_, err := cs.AppsV1().Deployments(namespace).Create(ctx, deploy, metav1.CreateOptions{})
		return err
	})
	start := time.Now()
	waitAvailable(ctx, t, cs, "web", 2)
	t.Logf("Deployment web: 2/2 available in %s", time.Since(start).Round(time.Second))

	pods := webPods(ctx, t, cs)
	var urls, names []string
	for _, p := range pods {
		urls = append(urls, "http://"+p.Status.PodIP+":8080/")
		names = append(names, p.Name)
	}

	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "fetch"},
		Spec: batchv1.JobSpec{
			BackoffLimit: new(int32(3)),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers: []corev1.Container{{
					Name:            "fetch",
					Image:           workloadImage,
					ImagePullPolicy: corev1.PullNever,
					Command:         append([]string{"/usr/local/bin/workload", "fetch"}, urls...),
				}},
			}},
		},
	}
	mustCreate(t, func() error {
		_, err := cs.BatchV1().Jobs(namespace).Create(ctx, job, metav1.CreateOptions{})
		return err
	})
	start = time.Now()
	poll(ctx, t, "Job fetch complete", 3*time.Minute, func() (bool, error) {
		j, err := cs.BatchV1().Jobs(namespace).Get(ctx, "fetch", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range j.Status.Conditions {
			if c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue {
				return false, fmt.Errorf("job failed: %s", c.Message)
			}
		}
		return j.Status.Succeeded == 1, nil
	})
	jobPods, err := cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name=fetch"})
	if err != nil {
		t.Fatal(err)
	}
	var logs string
	for _, p := range jobPods.Items {
		if p.Status.Phase == corev1.PodSucceeded {
			raw, err := cs.CoreV1().Pods(namespace).GetLogs(p.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
			if err != nil {
				t.Fatalf("logs of %s: %v", p.Name, err)
			}
			logs = string(raw)
		}
	}
	t.Logf("Job fetch complete in %s; its log:\n%s", time.Since(start).Round(time.Second), logs)
	for i, u := range urls {
		want := u + " " + names[i] + " " + message
		if !slices.Contains(strings.Split(strings.TrimSpace(logs), "\n"), want) {
			t.Errorf("job log lacks %q", want)
		}
	}

	// What the API server listed is what sett stores.
	all, err := cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, p := range all.Items {
		listed = append(listed, p.Name)
	}
	stored := storedPods(ctx, t, etcd)
	slices.Sort(listed)
	if !slices.Equal(listed, stored) {
		t.Errorf("pods listed by the API server %v, stored in sett %v", listed, stored)
	}
	t.Logf("sett stores %d pods of %s: %v", len(stored), namespace, stored)

	scale, err := cs.AppsV1().Deployments(namespace).GetScale(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	scale.Spec.Replicas = 3
	if _, err := cs.AppsV1().Deployments(namespace).UpdateScale(ctx, "web", scale, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitAvailable(ctx, t, cs, "web", 3)
	if n := len(webPods(ctx, t, cs)); n != 3 {
		t.Errorf("after scaling to 3: %d running web pods", n)
	}

	fg := metav1.DeletePropagationForeground
	if err := cs.AppsV1().Deployments(namespace).Delete(ctx, "web", metav1.DeleteOptions{PropagationPolicy: &fg}); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	poll(ctx, t, "web pods gone from sett", 3*time.Minute, func() (bool, error) {
		for _, name := range storedPods(ctx, t, etcd) {
			if strings.HasPrefix(name, "web-") {
				return false, nil
			}
		}
		_, err := cs.AppsV1().Deployments(namespace).Get(ctx, "web", metav1.GetOptions{})
		return apierrors.IsNotFound(err), ignoreNotFound(err)
	})
	t.Logf("Deployment web and its pods deleted (garbage collector) in %s", time.Since(start).Round(time.Second))
}

// storedPods lists the pod names sett holds for namespace, checking each
// value is a Kubernetes protobuf object.
func storedPods(ctx context.Context, t *testing.T, etcd *clientv3.Client) []string {
	t.Helper()
	prefix := "/registry/pods/" + namespace + "/"
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := etcd.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatalf("sett get %s: %v", prefix, err)
	}
	var names []string
	for _, kv := range resp.Kvs {
		if !bytes.HasPrefix(kv.Value, []byte(k8sProtoMagic)) {
			t.Errorf("%s: value is not a Kubernetes protobuf object: %q", kv.Key, kv.Value[:min(len(kv.Value), 16)])
		}
		names = append(names, strings.TrimPrefix(string(kv.Key), prefix))
	}
	slices.Sort(names)
	return names
}

func webPods(ctx context.Context, t *testing.T, cs kubernetes.Interface) []corev1.Pod {
	t.Helper()
	list, err := cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil && p.Status.PodIP != "" {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func waitAvailable(ctx context.Context, t *testing.T, cs kubernetes.Interface, name string, replicas int32) {
	t.Helper()
	poll(ctx, t, fmt.Sprintf("Deployment %s %d/%d available", name, replicas, replicas), 4*time.Minute, func() (bool, error) {
		d, err := cs.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return d.Status.ObservedGeneration >= d.Generation && d.Status.AvailableReplicas == replicas && d.Status.UpdatedReplicas == replicas, nil
	})
}

// poll checks cond every second until it holds; on timeout it fails the
// test with the pods' states, which say why.
func poll(ctx context.Context, t *testing.T, what string, timeout time.Duration, cond func() (bool, error)) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(ctx, time.Second, timeout, true, func(context.Context) (bool, error) {
		ok, err := cond()
		if err != nil {
			last = err
		}
		return ok, nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v (last error: %v)", what, err, last)
	}
}

func mustCreate(t *testing.T, create func() error) {
	t.Helper()
	if err := create(); err != nil {
		t.Fatal(err)
	}
}

func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

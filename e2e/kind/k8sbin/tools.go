//go:build tools

// Package k8sbin pins the node-side Kubernetes binaries of the Kind node
// image (kubeadm, kubelet, kubectl) to the release e2e/go.mod uses for the
// control plane. It is a module of its own so that their extra dependencies
// (kubectl's CLI libraries, kubeadm's validators) stay out of e2e/go.mod,
// whose control-plane binaries would otherwise be rebuilt.
package k8sbin

import (
	_ "k8s.io/kubernetes/cmd/kubeadm"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)

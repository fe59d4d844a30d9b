# mk/kind.mk -- sett's container image, and a Kind node image built offline.
#
#   make image            sett as a FROM-scratch image ($(SETT_IMAGE))
#   make kind-node-image  a Kind node image for Kubernetes $(KIND_K8S_VERSION)
#                         ($(KIND_NODE_IMAGE)) built with nothing pulled
#   make e2e-kind         the e2e/kind suite: a Kind cluster whose
#                         kube-apiserver stores everything in sett
#
# The node image is what kindest/node is, assembled from parts this machine
# can reach: a Debian rootfs from debootstrap (the apt mirror) brought in with
# docker import; kind's base files (entrypoint, units, containerd config) taken
# from the sigs.k8s.io/kind module pinned in e2e/kind/go.mod; kubeadm, kubelet,
# kubectl, containerd, the CNI plugins and coredns built from their Go modules;
# pause compiled from the Kubernetes module's source; the control-plane
# components as FROM-scratch images tagged exactly as kubeadm asks for them.
# Work files live under the git-ignored $(KIND_WORK); each step has its own
# output so an interrupted build resumes where it stopped.

SETT_IMAGE       ?= sett.local/sett:dev
KIND_K8S_VERSION := v1.36.3
KIND_NODE_IMAGE  ?= sett.local/kind-node:$(KIND_K8S_VERSION)
KIND_ROOTFS_IMAGE := sett.local/kind-rootfs:bookworm

# Versions kubeadm $(KIND_K8S_VERSION) expects (cmd/kubeadm/app/constants),
# and what kind's base image ships.
KIND_PAUSE_VERSION   := 3.10.2
KIND_COREDNS_VERSION := v1.14.2
KIND_CONTAINERD_VERSION := v2.3.4
KIND_CNI_VERSION     := v1.9.1

KIND_DEBIAN_SUITE  ?= bookworm
KIND_DEBIAN_MIRROR ?= http://deb.debian.org/debian
# kind's base image package set (images/base/Dockerfile), minus NFS/iSCSI,
# plus runc (kind builds its own) and dbus.
KIND_DEBIAN_PACKAGES := systemd,systemd-sysv,dbus,conntrack,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,pigz,fuse-overlayfs,bash,ca-certificates,curl,jq,procps,e2fsprogs,runc,socat,ebtables

KIND_WORK  := bin/.kind-node
KIND_GOBIN := $(CURDIR)/$(KIND_WORK)/gobin
KIND_CTX   := $(KIND_WORK)/ctx
KIND_GOENV := GOWORK=off CGO_ENABLED=0 GOFLAGS=-trimpath GOBIN=$(KIND_GOBIN)

SETT_KIND_VARIANTS ?= mtls,http

.PHONY: image kind-node-image kind-node-clean e2e-kind

# ---- sett's own image -------------------------------------------------------

image:
	@mkdir -p bin/.image/data
	CGO_ENABLED=0 $(GO) build -ldflags=-s -o bin/.image/sett ./cmd/sett
	docker build -q -f deploy/Dockerfile -t $(SETT_IMAGE) bin/.image

# ---- kubeadm, kubelet, kubectl ---------------------------------------------
# From e2e/kind/k8sbin, a module pinned to the release of e2e/go.mod (same
# replaces, so the build cache of the control plane is shared).

KIND_K8S_MODFILES := e2e/kind/k8sbin/go.mod e2e/kind/k8sbin/go.sum
E2E_PKG_kubeadm := k8s.io/kubernetes/cmd/kubeadm
E2E_PKG_kubelet := k8s.io/kubernetes/cmd/kubelet
E2E_PKG_kubectl := k8s.io/kubernetes/cmd/kubectl
KIND_K8S_BINS := bin/kubeadm bin/kubelet bin/kubectl

# Stamped with the release they are built from: kubeadm compares its own
# version with the cluster's, and the kubelet reports it on its Node.
KIND_K8S_MINOR := $(word 2,$(subst ., ,$(KIND_K8S_VERSION)))
KIND_K8S_LDFLAGS := -s $(foreach p,k8s.io/component-base/version k8s.io/client-go/pkg/version,\
  -X $(p).gitVersion=$(KIND_K8S_VERSION) -X $(p).gitMajor=1 -X $(p).gitMinor=$(KIND_K8S_MINOR) -X $(p).gitTreeState=clean)

$(KIND_K8S_BINS): bin/%: $(KIND_K8S_MODFILES)
	@mkdir -p bin
	cd e2e/kind/k8sbin && $(E2E_GOENV) go build -mod=readonly -buildvcs=false -trimpath -ldflags='$(KIND_K8S_LDFLAGS)' -o ../../../$@.tmp $(E2E_PKG_$*)
	mv -f $@.tmp $@
	@touch $@

# ---- node binaries from their own modules ------------------------------------

$(KIND_WORK)/gobin/containerd:
	$(KIND_GOENV) go install -tags 'no_aufs no_zfs no_btrfs no_devmapper' \
	  github.com/containerd/containerd/v2/cmd/containerd@$(KIND_CONTAINERD_VERSION) \
	  github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$(KIND_CONTAINERD_VERSION) \
	  github.com/containerd/containerd/v2/cmd/ctr@$(KIND_CONTAINERD_VERSION)

$(KIND_WORK)/gobin/host-local:
	$(KIND_GOENV) go install \
	  github.com/containernetworking/plugins/plugins/ipam/host-local@$(KIND_CNI_VERSION) \
	  github.com/containernetworking/plugins/plugins/main/loopback@$(KIND_CNI_VERSION) \
	  github.com/containernetworking/plugins/plugins/main/bridge@$(KIND_CNI_VERSION) \
	  github.com/containernetworking/plugins/plugins/main/ptp@$(KIND_CNI_VERSION) \
	  github.com/containernetworking/plugins/plugins/meta/portmap@$(KIND_CNI_VERSION)

$(KIND_WORK)/gobin/coredns:
	$(KIND_GOENV) go install github.com/coredns/coredns@$(KIND_COREDNS_VERSION)

# The workload the e2e suite runs in its pods (our code, e2e/kind/workload).
$(KIND_WORK)/gobin/workload: $(wildcard e2e/kind/workload/*.go) e2e/kind/go.mod
	cd e2e/kind && $(KIND_GOENV) go build -ldflags=-s -o $(KIND_GOBIN)/workload ./workload

# pause is C; compiled statically from the Kubernetes module's own source.
$(KIND_WORK)/pause: e2e/go.mod
	@mkdir -p $(KIND_WORK)
	src=$$(cd e2e && GOWORK=off go mod download -json k8s.io/kubernetes | awk -F'"' '$$2=="Dir"{print $$4}') && \
	  gcc -Os -static -Wall -Werror -DVERSION=v$(KIND_PAUSE_VERSION)-sett -o $@ $$src/build/pause/linux/pause.c

# ---- images kubeadm runs, FROM scratch ---------------------------------------

KIND_COMPONENT_IMAGES := \
  kube-apiserver=registry.k8s.io/kube-apiserver:$(KIND_K8S_VERSION) \
  kube-controller-manager=registry.k8s.io/kube-controller-manager:$(KIND_K8S_VERSION) \
  kube-scheduler=registry.k8s.io/kube-scheduler:$(KIND_K8S_VERSION) \
  coredns=registry.k8s.io/coredns/coredns:$(KIND_COREDNS_VERSION) \
  pause=registry.k8s.io/pause:$(KIND_PAUSE_VERSION) \
  workload=sett.local/workload:e2e

# Each image is one static binary on an empty base, on PATH (kubeadm's
# static pods call kube-apiserver & co. by name) and as the entrypoint
# (coredns and pause run with the image's own).
$(KIND_WORK)/images.tar: bin/kube-apiserver bin/kube-controller-manager bin/kube-scheduler \
    $(KIND_WORK)/gobin/coredns $(KIND_WORK)/pause $(KIND_WORK)/gobin/workload
	@rm -rf $(KIND_WORK)/components && mkdir -p $(KIND_WORK)/components
	cp bin/kube-apiserver bin/kube-controller-manager bin/kube-scheduler \
	   $(KIND_WORK)/gobin/coredns $(KIND_WORK)/gobin/workload $(KIND_WORK)/pause $(KIND_WORK)/components/
	set -e; tags=; for pair in $(KIND_COMPONENT_IMAGES); do \
	  bin=$${pair%%=*}; tag=$${pair#*=}; \
	  printf 'FROM scratch\nENV PATH=/usr/local/bin\nCOPY %s /usr/local/bin/%s\nENTRYPOINT ["/usr/local/bin/%s"]\n' $$bin $$bin $$bin | \
	    docker build -q -t $$tag -f - $(KIND_WORK)/components >/dev/null; \
	  tags="$$tags $$tag"; \
	done; docker save -o $@.tmp $$tags
	mv -f $@.tmp $@

# ---- the node image ----------------------------------------------------------

$(KIND_WORK)/rootfs.done:
	@command -v debootstrap >/dev/null || { echo "kind-node-image needs debootstrap (apt-get install debootstrap)"; exit 1; }
	rm -rf $(KIND_WORK)/rootfs.tmp && mkdir -p $(KIND_WORK)
	debootstrap --variant=minbase --include=$(KIND_DEBIAN_PACKAGES) \
	  $(KIND_DEBIAN_SUITE) $(KIND_WORK)/rootfs.tmp $(KIND_DEBIAN_MIRROR)
	rm -rf $(KIND_WORK)/rootfs.tmp/var/cache/apt/archives/*.deb $(KIND_WORK)/rootfs.tmp/var/lib/apt/lists/*
	rm -rf $(KIND_WORK)/rootfs && mv $(KIND_WORK)/rootfs.tmp $(KIND_WORK)/rootfs
	touch $@

$(KIND_WORK)/rootfs-image.done: $(KIND_WORK)/rootfs.done
	tar -C $(KIND_WORK)/rootfs --numeric-owner -c . | docker import - $(KIND_ROOTFS_IMAGE)
	touch $@

kind-node-image: $(KIND_WORK)/rootfs-image.done $(KIND_K8S_BINS) $(KIND_WORK)/gobin/containerd \
    $(KIND_WORK)/gobin/host-local $(KIND_WORK)/images.tar $(wildcard e2e/kind/nodeimage/*)
	@rm -rf $(KIND_CTX) && mkdir -p $(KIND_CTX)/k8s $(KIND_CTX)/containerd $(KIND_CTX)/cni
	kind=$$(cd e2e/kind && GOWORK=off go mod download -json sigs.k8s.io/kind | awk -F'"' '$$2=="Dir"{print $$4}') && \
	  cp -r $$kind/images/base/files $(KIND_CTX)/kind-base && chmod -R u+w $(KIND_CTX)/kind-base
	cp $(KIND_K8S_BINS) $(KIND_CTX)/k8s/
	cp $(addprefix $(KIND_WORK)/gobin/,containerd containerd-shim-runc-v2 ctr) $(KIND_CTX)/containerd/
	cp $(addprefix $(KIND_WORK)/gobin/,host-local loopback bridge ptp portmap) $(KIND_CTX)/cni/
	ln $(KIND_WORK)/images.tar $(KIND_CTX)/images.tar
	cp e2e/kind/nodeimage/* $(KIND_CTX)/
	docker build -f $(KIND_CTX)/node.Dockerfile \
	  --build-arg ROOTFS=$(KIND_ROOTFS_IMAGE) --build-arg K8S_VERSION=$(KIND_K8S_VERSION) \
	  --build-arg PAUSE_IMAGE=registry.k8s.io/pause:$(KIND_PAUSE_VERSION) \
	  -t $(KIND_NODE_IMAGE) $(KIND_CTX)

kind-node-clean:
	rm -rf $(KIND_WORK)
	-docker rmi $(KIND_NODE_IMAGE) $(KIND_ROOTFS_IMAGE)

# ---- the suite ---------------------------------------------------------------

e2e-kind: image
	@docker image inspect $(KIND_NODE_IMAGE) >/dev/null 2>&1 || $(MAKE) kind-node-image
	cd e2e/kind && GOWORK=off SETT_IMAGE=$(SETT_IMAGE) KIND_NODE_IMAGE=$(KIND_NODE_IMAGE) SETT_KIND_VARIANTS=$(SETT_KIND_VARIANTS) \
	  go test -count=1 -timeout 30m -v .

# `make test` runs the Kind suite only where its node image exists (building
# one takes a long time, root and debootstrap); elsewhere it says that the
# suite did not run. TEST_KIND_VARIANTS keeps `make test` to one cluster.
TEST_KIND_VARIANTS ?= mtls
.PHONY: test-kind
test-kind:
	@if ! command -v docker >/dev/null 2>&1 || ! docker image inspect $(KIND_NODE_IMAGE) >/dev/null 2>&1; then \
	  echo "e2e-kind: SKIPPED -- not run, not passed: no Kind node image $(KIND_NODE_IMAGE) here (build it with: make kind-node-image)"; \
	else \
	  $(MAKE) --no-print-directory e2e-kind SETT_KIND_VARIANTS=$(TEST_KIND_VARIANTS); \
	fi

# mk/e2e.mk -- the Kubernetes control plane that e2e/ runs against sett.
#
# Built from k8s.io/kubernetes (pinned in e2e/go.mod, its own module so
# none of it reaches the server's go.mod) into the git-ignored bin/. A binary
# is rebuilt only when the set of modules it is built from changes
# (bin/.k8s-modules), not on every edit of e2e/go.mod: a test dependency
# added there must not cost a cold build of Kubernetes (52 minutes for the
# four on 2 cores shared with other builds; kube-apiserver alone 46).

E2E_MODFILES := e2e/go.mod e2e/go.sum
E2E_GOENV    := GOWORK=off CGO_ENABLED=0
E2E_GOFLAGS  := -mod=readonly -buildvcs=false -trimpath -ldflags=-s

E2E_PKG_kube-apiserver          := k8s.io/kubernetes/cmd/kube-apiserver
E2E_PKG_kube-controller-manager := k8s.io/kubernetes/cmd/kube-controller-manager
E2E_PKG_kube-scheduler          := k8s.io/kubernetes/cmd/kube-scheduler
E2E_PKG_kubemark                := k8s.io/kubernetes/cmd/kubemark

E2E_BINS := bin/kube-apiserver bin/kube-controller-manager bin/kube-scheduler bin/kubemark
E2E_PKGS := $(foreach b,$(E2E_BINS),$(E2E_PKG_$(notdir $(b))))

.PHONY: k8s-binaries
k8s-binaries: $(E2E_BINS)

$(E2E_BINS): bin/%: bin/.k8s-modules
	@mkdir -p bin
	cd e2e && $(E2E_GOENV) go build $(E2E_GOFLAGS) -o ../$@.tmp $(E2E_PKG_$*)
	mv -f $@.tmp $@
	@touch $@

# bin/.k8s-modules lists module@version of every package the binaries
# import; it is rewritten only when that list changes, so its time stamp
# tells the binaries whether they are stale. bin/.k8s-modules.checked
# records when e2e/go.mod and go.sum were last compared.
bin/.k8s-modules: bin/.k8s-modules.checked ;
bin/.k8s-modules.checked: $(E2E_MODFILES)
	@mkdir -p bin
	cd e2e && $(E2E_GOENV) go list -mod=readonly -deps \
		-f '{{with .Module}}{{.Path}}@{{.Version}}{{with .Replace}} => {{.Path}}@{{.Version}}{{end}}{{end}}' \
		$(E2E_PKGS) > ../bin/.k8s-modules.raw
	sort -u bin/.k8s-modules.raw > bin/.k8s-modules.new && rm bin/.k8s-modules.raw
	@if cmp -s bin/.k8s-modules.new bin/.k8s-modules; then rm bin/.k8s-modules.new; \
	else mv bin/.k8s-modules.new bin/.k8s-modules; echo "bin/.k8s-modules: module set changed"; fi
	@touch $@

# e2e runs the Kubernetes tests of e2e/ (the storage suite in e2e/storagesuite
# has its own target): kube-apiserver CRUD on sett, and a whole control plane
# (controller manager, scheduler, hollow kubelets) under a workload, on etcd
# and on sett, in a short mode that compacts every 20s (about 3 minutes; the
# phase timings go to bin/e2e-timings.md).
.PHONY: e2e e2e-long
e2e: build bin/etcd $(E2E_BINS)
	cd e2e && GOWORK=off go test -count=1 -timeout 30m -v .

# The control-plane workload for E2E_DURATION per store (default 20m) at the
# default compaction interval (5 minutes), etcd then sett.
E2E_DURATION ?= 20m
e2e-long: build bin/etcd $(E2E_BINS)
	cd e2e && SETT_E2E_DURATION=$(E2E_DURATION) GOWORK=off go test -count=1 -timeout 150m -v \
		-run TestControlPlaneWorkload .

# mk/e2e.mk -- the Kubernetes control plane that e2e/ runs against sett.
#
# Built from k8s.io/kubernetes (pinned in e2e/go.mod, its own module so
# none of it reaches the server's go.mod) into the git-ignored bin/. A binary
# is rebuilt only when e2e/go.mod or e2e/go.sum is newer.

E2E_MODFILES := e2e/go.mod e2e/go.sum
E2E_GOENV    := GOWORK=off CGO_ENABLED=0
E2E_GOFLAGS  := -mod=readonly -buildvcs=false -trimpath -ldflags=-s

E2E_PKG_kube-apiserver          := k8s.io/kubernetes/cmd/kube-apiserver
E2E_PKG_kube-controller-manager := k8s.io/kubernetes/cmd/kube-controller-manager
E2E_PKG_kube-scheduler          := k8s.io/kubernetes/cmd/kube-scheduler
E2E_PKG_kubemark                := k8s.io/kubernetes/cmd/kubemark

E2E_BINS := bin/kube-apiserver bin/kube-controller-manager bin/kube-scheduler bin/kubemark

.PHONY: k8s-binaries
k8s-binaries: $(E2E_BINS)

$(E2E_BINS): bin/%: $(E2E_MODFILES)
	@mkdir -p bin
	cd e2e && $(E2E_GOENV) go build $(E2E_GOFLAGS) -o ../$@.tmp $(E2E_PKG_$*)
	mv -f $@.tmp $@
	@touch $@

# e2e runs the Kubernetes tests in e2e/ against sett (not yet part of
# `make test`: a cold kube-apiserver build takes about ten minutes here).
.PHONY: e2e
e2e: build bin/kube-apiserver
	cd e2e && GOWORK=off go test -count=1 -timeout 20m -v ./...

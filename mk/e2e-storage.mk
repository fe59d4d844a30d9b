# mk/e2e-storage.mk -- Kubernetes' own apiserver storage test suite on sett.
#
# e2e/storagesuite runs every function of k8s.io/apiserver's generic storage
# suite (pkg/storage/testing) that pkg/storage/etcd3's tests run, the way
# they run it, over the etcd3 store talking to a fresh sett per test. It is
# part of `make test`. The same suite runs against real etcd with
# `make e2e-storage-etcd`, to tell a sett divergence from a suite
# expectation. E2E_STORAGE_RUN narrows it to tests matching a regexp.

E2E_STORAGE_TIMEOUT ?= 15m
E2E_STORAGE_RUN     ?= .
# $(call E2E_STORAGE_TEST,<sett|etcd>)
E2E_STORAGE_TEST     = cd e2e && SETT_STORAGE_SUITE_TARGET=$(1) GOWORK=off $(GO) test -count=1 \
	-timeout $(E2E_STORAGE_TIMEOUT) -run '$(E2E_STORAGE_RUN)' $(GOTESTFLAGS) ./storagesuite/

.PHONY: e2e-storage e2e-storage-etcd
e2e-storage: build
	$(call E2E_STORAGE_TEST,sett)

e2e-storage-etcd: bin/etcd
	$(call E2E_STORAGE_TEST,etcd)

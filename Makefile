# sett — an etcd v3 wire-compatible server.
#
#   make build   build bin/sett
#   make test    build the reference etcd/etcdctl (cached in bin/), vet, run every test
#   make check   fast: gofmt, vet, build, unit tests (no etcd, no Kubernetes binaries)
#   make bench   sett vs real etcd with etcd's benchmark tool, same run, same machine
#   make fuzz-compat DURATION=10m   random differential testing against etcd
#   make e2e     kube-apiserver on sett

GO ?= go
TEST_TIMEOUT ?= 25m
GOTESTFLAGS ?=

.DEFAULT_GOAL := build

.PHONY: build check test vet fmt-check bench bench-long fuzz-compat compat-table clean

build:
	$(GO) build -o bin/sett ./cmd/sett

include mk/tools.mk
include mk/e2e.mk
include mk/e2e-storage.mk
include mk/kind.mk

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# The packages whose tests need neither real etcd nor the Kubernetes
# binaries nor network namespaces: a few minutes, for every edit.
CHECK_PKGS = $(shell $(GO) list ./... | grep -v -e /compat -e /clustertest -e /deploy -e /bench/ -e /internal/testproc)

check: fmt-check vet build
	$(GO) test -count=1 -timeout 10m $(GOTESTFLAGS) $(CHECK_PKGS)

# Tests that compare with real etcd build it first (bin/ is cached).
test: bin/etcd bin/etcdctl fmt-check vet
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) $(GOTESTFLAGS) ./...
	$(MAKE) e2e
	$(MAKE) e2e-storage
	@$(MAKE) --no-print-directory test-kind

# Random operation sequences against real etcd for DURATION (SEED to start
# from a given seed); a divergence is shrunk to its shortest failing prefix.
DURATION ?= 5m
fuzz-compat: bin/etcd
	SETT_FUZZ_DURATION=$(DURATION) SETT_FUZZ_SEED=$(SEED) $(GO) test -tags fuzzcompat -count=1 -timeout 0 -run TestKVDiffFuzz -v ./compat/ 2>&1 | grep -E '^(=== RUN|--- FAIL|ok|FAIL|PASS)|fuzz_test|MISMATCH|seeds'

# The etcdctl compatibility matrix in compat/README.md.
compat-table: bin/etcd bin/etcdctl
	$(GO) test -count=1 -run 'Etcdctl' ./compat/ -compat.table=$(CURDIR)/compat/README.md

# bench/README.md: figures, settings, report; about 12 minutes on 2 cores (732 s measured).
bench: build bin/etcd bin/benchmark
	./bench/run.sh

# bench plus loading on to five million keys; about 30 minutes more.
bench-long: build bin/etcd bin/benchmark
	BENCH_LONG=1 ./bench/run.sh

clean:
	rm -rf bin default.sett

# mk/tools.mk -- reference etcd binaries for tests and benchmarks.
#
# Included from the root Makefile with:
#
#     include mk/tools.mk
#
# Builds real etcd, etcdctl, etcdutl and etcd's benchmark tool from the separate
# tools/ Go module (so their heavy dependencies never reach the root go.mod)
# into the git-ignored bin/ directory. A binary is only rebuilt when it is
# missing or older than tools/go.mod / tools/go.sum, so repeated `make tools`
# (and testproc.EnsureBinary) are free after the first build. tools/go.sum is
# committed, so a clean checkout (CI=true included) builds with no manual step.

# Keep whatever default goal the including Makefile has (or will have).
_tools_mk_saved_goal := $(.DEFAULT_GOAL)

TOOLS_GO      ?= go
TOOLS_MODFILES := tools/go.mod tools/go.sum

# GOWORK=off: a go.work in the repo must not pull the tools module into the
# root workspace (or vice versa). CGO is not needed by any of the tools.
TOOLS_GOENV   := GOWORK=off CGO_ENABLED=0
TOOLS_GOFLAGS := -mod=readonly -buildvcs=false

TOOLS_PKG_etcd      := go.etcd.io/etcd/server/v3
TOOLS_PKG_etcdctl   := go.etcd.io/etcd/etcdctl/v3
TOOLS_PKG_etcdutl   := go.etcd.io/etcd/etcdutl/v3
TOOLS_PKG_benchmark := go.etcd.io/etcd/v3/tools/benchmark

TOOLS_BINS := bin/etcd bin/etcdctl bin/etcdutl bin/benchmark

.PHONY: tools tools-clean
tools: $(TOOLS_BINS)

# Build into a temporary name and rename, so an interrupted build never
# leaves a truncated binary that looks up to date, and so the mtime is always
# refreshed (go build skips rewriting an identical -o target).
$(TOOLS_BINS): bin/%: $(TOOLS_MODFILES)
	@mkdir -p bin
	cd tools && $(TOOLS_GOENV) $(TOOLS_GO) build $(TOOLS_GOFLAGS) -o ../$@.tmp $(TOOLS_PKG_$*)
	mv -f $@.tmp $@
	@touch $@

tools-clean:
	rm -f $(TOOLS_BINS) $(addsuffix .tmp,$(TOOLS_BINS))

.DEFAULT_GOAL := $(_tools_mk_saved_goal)

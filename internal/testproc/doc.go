// Package testproc starts real server processes (reference etcd and sett)
// for tests, and builds the binaries they need.
//
// It is test-only infrastructure and depends on the standard library alone,
// so it adds nothing to the root go.mod.
//
// Reference binaries (etcd, etcdctl, benchmark) come from the separate tools/
// module and are built by mk/tools.mk into the git-ignored bin/ directory;
// EnsureBinary builds them on demand, serialised across concurrently running
// test processes by a lock file. sett itself is built from ./cmd/sett by
// BuildSett, once per test process.
//
// Every process started here is bound to the test that started it: it is
// stopped in t.Cleanup, and if the test failed the last lines of its
// combined stdout/stderr are written to the test log.
package testproc

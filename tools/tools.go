//go:build tools

// Package tools pins the reference etcd binaries used by sett's tests and
// benchmarks. It is never compiled; the blank imports only keep the main
// packages (and their dependencies) in go.mod / go.sum so that
// `go build -o ../bin/X <pkg>` works from a clean checkout.
package tools

import (
	_ "go.etcd.io/etcd/etcdctl/v3"
	_ "go.etcd.io/etcd/etcdutl/v3"
	_ "go.etcd.io/etcd/server/v3"
	_ "go.etcd.io/etcd/v3/tools/benchmark"
)

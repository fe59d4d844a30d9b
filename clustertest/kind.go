package clustertest

import (
	"testing"

	"github.com/sett-dev/sett/internal/testproc"
)

// Kind is a server implementation a cluster is made of.
type Kind struct {
	Name  string
	Start func(t testing.TB, opts testproc.Options) *testproc.Proc
}

var (
	// Etcd is the reference etcd (bin/etcd, built on demand).
	Etcd = Kind{Name: "etcd", Start: testproc.StartEtcd}
	// Sett is ./cmd/sett, built once per test process.
	Sett = Kind{Name: "sett", Start: testproc.StartSett}
)

package storagesuite

import (
	"testing"
)

// BenchmarkServerStart reports how long a fresh server takes from exec to
// answering Status: the fixed cost each test of the suite pays.
// SETT_STORAGE_SUITE_TARGET=etcd measures real etcd.
func BenchmarkServerStart(b *testing.B) {
	if _, err := Binary(mustTarget(b)); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		s := StartServer(b, ServerOptions{})
		b.StopTimer()
		s.stop() // stopping twice (again at cleanup) is harmless
		b.StartTimer()
	}
}

func mustTarget(tb testing.TB) string {
	tb.Helper()
	target, err := Target()
	if err != nil {
		tb.Fatal(err)
	}
	return target
}

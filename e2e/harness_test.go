package e2e

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func TestParseMetrics(t *testing.T) {
	m := ParseMetrics(`# HELP x help
# TYPE apiserver_watch_cache_consistent_read_total counter
apiserver_watch_cache_consistent_read_total{fallback="false",group="",resource="pods",success="true"} 7
apiserver_watch_cache_consistent_read_total{fallback="true",group="",resource="pods",success="true"} 2
apiserver_watch_cache_consistent_read_total{fallback="false",group="apps",resource="deployments",success="true"} 3
odd_label{v="a \"quoted\", comma"} 1.5
plain_total 4 1700000000000
broken{ 3
`)
	tests := []struct {
		name  string
		match map[string]string
		want  float64
	}{
		{"apiserver_watch_cache_consistent_read_total", nil, 12},
		{"apiserver_watch_cache_consistent_read_total", map[string]string{"fallback": "false", "success": "true"}, 10},
		{"apiserver_watch_cache_consistent_read_total", map[string]string{"resource": "pods", "fallback": "true"}, 2},
		{"odd_label", map[string]string{"v": `a "quoted", comma`}, 1.5},
		{"plain_total", nil, 4},
		{"missing", nil, 0},
	}
	for _, tt := range tests {
		if got := m.Sum(tt.name, tt.match); got != tt.want {
			t.Errorf("Sum(%s, %v) = %v, want %v", tt.name, tt.match, got, tt.want)
		}
	}
}

func TestStorageErrors(t *testing.T) {
	log := strings.Join([]string{
		`I1121 02:00:00.000000       1 compact.go:1] "Compacted etcd" rev=10`,
		`E1121 02:00:01.000000       1 watcher.go:1] "watch chan error" err="etcdserver: mvcc: required revision has been compacted"`,
		`W1121 02:00:02.000000       1 cacher.go:1] "Timeout: Too large resource version" rv=12`,
		`E1121 02:00:03.000000       1 controller.go:1] "unrelated error"`,
		`E1121 02:00:04.000000       1 status.go:1] "etcd client connection failed"`,
	}, "\n") + "\n"
	got := StorageErrors(log, nil)
	if len(got) != 3 || !strings.Contains(got[0], "watch chan error") || !strings.Contains(got[1], "Too large") || !strings.Contains(got[2], "connection failed") {
		t.Fatalf("StorageErrors = %q", got)
	}
	// The last line falls inside a skipped window (a store restart).
	start := strings.Index(log, "E1121 02:00:04")
	if got := StorageErrors(log, [][2]int{{start, len(log)}}); len(got) != 2 {
		t.Fatalf("with the restart window skipped: %q", got)
	}
}

func TestTimingTable(t *testing.T) {
	etcd, sett := NewTimings(), NewTimings()
	etcd.Add("configmaps", 2*time.Second)
	etcd.Add("configmaps", 4*time.Second)
	sett.Add("configmaps", 1500*time.Millisecond)
	sett.Add("restart", 12*time.Second)
	got := TimingTable("etcd", etcd, "sett", sett)
	for _, want := range []string{"| configmaps | 2/1 | 3000 ms | 1500 ms | 0.50 |", "| restart | 0/1 | - | 12.0 s | - |"} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
}

// TestStoreMutualTLS starts each store with client certificate
// authentication: a client with the certificate reads its status, one
// without is refused, and the store comes back after a SIGTERM restart.
func TestStoreMutualTLS(t *testing.T) {
	for _, kind := range []StoreKind{Etcd, Sett} {
		t.Run(string(kind), func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			pki, err := NewPKI(dir + "/pki")
			if err != nil {
				t.Fatal(err)
			}
			s, err := NewStore(kind, binary(t, string(kind)), dir, pki)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Start(ctx); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Stop() })
			if !strings.HasPrefix(s.ClientURL, "https://") {
				t.Fatalf("client URL %s", s.ClientURL)
			}
			if _, err := s.Status(ctx); err != nil {
				t.Fatalf("status with a client certificate: %v", err)
			}

			tc, err := s.TLS.Config()
			if err != nil {
				t.Fatal(err)
			}
			anonymous := &tls.Config{RootCAs: tc.RootCAs, MinVersion: tls.VersionTLS12}
			c, err := clientv3.New(clientv3.Config{Endpoints: []string{s.ClientURL}, TLS: anonymous, DialTimeout: 3 * time.Second, Logger: zap.NewNop()})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			if _, err := c.Put(sctx, "k", "v"); err == nil {
				t.Fatal("a client without a certificate could write")
			}

			if err := s.Restart(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Status(ctx); err != nil {
				t.Fatalf("status after a restart: %v", err)
			}
		})
	}
}

package replication

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sett-dev/sett/storage"
)

// syncBuffer is a bytes.Buffer safe for the node's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSlowApplyWarning: an apply slower than --warning-apply-duration logs
// etcd's "apply request took too long" line with the request (its value
// redacted); under the threshold nothing is logged.
func TestSlowApplyWarning(t *testing.T) {
	for _, tc := range []struct {
		name  string
		limit time.Duration
		want  bool
	}{
		{"threshold 1ns", time.Nanosecond, true},
		{"threshold 1h", time.Hour, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out syncBuffer
			logger := slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelWarn}))
			dir := t.TempDir()
			store := openStore(t, dir)
			defer store.Close()
			self := storage.Member{ID: 1, Name: "m1", PeerURLs: []string{"http://127.0.0.1:2380"}}
			n, err := New(Config{
				Self: self, InitialCluster: []storage.Member{self}, ClusterID: 9, DataDir: dir, Store: store,
				TickInterval: 100 * time.Millisecond, UnsafeNoSync: true, Logger: logger,
				Options: Options{WarningApplyDuration: tc.limit},
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := n.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			defer n.Stop()
			<-n.Ready()
			put(t, n, "slow-key", "secret-value")
			logs := out.String()
			got := strings.Contains(logs, `"msg":"apply request took too long"`) && strings.Contains(logs, "slow-key")
			if got != tc.want {
				t.Fatalf("warning for the put logged %v, want %v:\n%s", got, tc.want, logs)
			}
			if strings.Contains(logs, "secret-value") {
				t.Errorf("the warning shows the value:\n%s", logs)
			}
			if tc.want && !strings.Contains(logs, `"expected-duration":1`) {
				t.Errorf("no expected-duration:\n%s", logs)
			}
		})
	}
}

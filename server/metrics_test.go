package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Every group commit is observed by etcd's backend commit histogram.
func TestCommitDurationMetric(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.ListenClientURLs = []string{"http://127.0.0.1:0"}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	addr := s.Addrs()[0].String()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{addr}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	for i := 0; i < 3; i++ {
		if _, err := cli.Put(context.Background(), "k", "v"); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^etcd_disk_backend_commit_duration_seconds_count (\d+)$`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("no commit duration histogram in /metrics")
	}
	if n, _ := strconv.Atoi(string(m[1])); n < 3 {
		t.Fatalf("%d commits observed, want at least 3", n)
	}
}

// --enable-pprof serves Go's profiles on the client URL, as etcd does.
func TestPprofEndpoint(t *testing.T) {
	for _, enabled := range []bool{false, true} {
		cfg := DefaultConfig()
		cfg.DataDir = t.TempDir()
		cfg.ListenClientURLs = []string{"http://127.0.0.1:0"}
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		cfg.EnablePprof = enabled
		s, err := Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get("http://" + s.Addrs()[0].String() + "/debug/pprof/cmdline")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.StatusCode == http.StatusOK; got != enabled {
			t.Errorf("pprof enabled=%v: status %d", enabled, resp.StatusCode)
		}
		s.Close()
	}
}

//go:build linux

package compat

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/sett-dev/sett/internal/testproc"
	"github.com/sett-dev/sett/storage"
)

// BenchmarkMigrate measures both directions of a migration of
// SETT_MIGRATE_KEYS (default 1,000,000) small keys (26-byte keys, 100-byte
// values, one revision each), each as its own process with its peak RSS:
// `sett snapshot export` of a stopped data dir to an etcd snapshot file,
// `sett snapshot restore` (import) of that file, and real
// `etcdutl snapshot restore` of the same file for comparison.
// (The peak RSS includes the pages of mapped files; the anonymous part
// is the memory the process itself holds.)
//
//	go test ./compat -run '^$' -bench Migrate -benchtime 1x -timeout 30m
func BenchmarkMigrate(b *testing.B) {
	keys := 1_000_000
	if v := os.Getenv("SETT_MIGRATE_KEYS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("SETT_MIGRATE_KEYS=%q", v)
		}
		keys = n
	}
	sett, etcdutl := testproc.BuildSett(b), testproc.EnsureBinary(b, "etcdutl")
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		data := filepath.Join(dir, "sett")
		loadSmallKeys(b, data, keys)
		file := filepath.Join(dir, "etcd.db")
		export := timedRun(b, sett, "snapshot", "export", "--data-dir", data, "--out", file, "--quiet")
		fi, err := os.Stat(file)
		if err != nil {
			b.Fatal(err)
		}
		imp := timedRun(b, sett, "snapshot", "restore", file, "--data-dir", filepath.Join(dir, "imported"), "--quiet")
		utl := timedRun(b, etcdutl, "snapshot", "restore", file, "--data-dir", filepath.Join(dir, "etcd"))
		mb := float64(fi.Size()) / 1e6
		b.Logf("%d keys, etcd snapshot file %.1f MB", keys, mb)
		for _, r := range []struct {
			name string
			run  runStats
		}{{"sett snapshot export", export}, {"sett snapshot restore (import)", imp}, {"etcdutl snapshot restore", utl}} {
			b.Logf("%-32s %6.2f s  %7.1f MB/s  %8.0f keys/s  peak RSS %4.0f MB (anonymous %4.0f MB)",
				r.name, r.run.wall.Seconds(), mb/r.run.wall.Seconds(), float64(keys)/r.run.wall.Seconds(), r.run.maxRSSMB, r.run.maxAnonMB)
		}
		b.ReportMetric(export.wall.Seconds(), "export-s")
		b.ReportMetric(imp.wall.Seconds(), "import-s")
		b.ReportMetric(utl.wall.Seconds(), "etcdutl-restore-s")
		b.ReportMetric(export.maxRSSMB, "export-rss-MB")
		b.ReportMetric(imp.maxRSSMB, "import-rss-MB")
		b.ReportMetric(utl.maxRSSMB, "etcdutl-rss-MB")
		b.ReportMetric(imp.maxAnonMB, "import-anon-MB")
	}
}

// loadSmallKeys creates a sett data dir holding n keys, one revision each,
// written through the store in batches of a thousand.
func loadSmallKeys(b *testing.B, dir string, n int) {
	b.Helper()
	opts := storage.DefaultOptions(dir)
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	opts.UnsafeNoSync = true
	s, err := storage.Open(opts)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	value := make([]byte, 100)
	var batch []storage.Entry
	for i := 0; i < n; i++ {
		batch = append(batch, storage.Entry{Index: uint64(i + 1), Req: &pb.InternalRaftRequest{
			Put: &pb.PutRequest{Key: fmt.Appendf(nil, "/registry/bench/key-%09d", i), Value: value},
		}})
		if len(batch) == 1000 || i == n-1 {
			if _, _, err := s.Apply(batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := s.Sync(); err != nil {
		b.Fatal(err)
	}
}

type runStats struct {
	wall time.Duration
	// maxRSSMB is the peak resident set; maxAnonMB the peak of its
	// anonymous part (heap, stacks), without mapped files' pages (bbolt's
	// and Badger's mmaps), which the kernel can drop under pressure.
	maxRSSMB, maxAnonMB float64
}

// timedRun runs bin with args to completion and reports its wall time and
// peak resident set size. The peak is the process's own VmHWM, polled from
// /proc while it runs: wait4's ru_maxrss would count the test process
// itself, whose memory the child shares until it execs.
func timedRun(b *testing.B, bin string, args ...string) runStats {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = etcdctlEnv()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
	var peakKiB, peakAnonKiB int64
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		hwm, anon := procMemory(status)
		peakKiB, peakAnonKiB = max(peakKiB, hwm), max(peakAnonKiB, anon)
		select {
		case err := <-done:
			wall := time.Since(start)
			if err != nil {
				b.Fatalf("%s %v: %v\n%s", filepath.Base(bin), args, err, out.Bytes())
			}
			return runStats{wall: wall, maxRSSMB: float64(peakKiB) / 1024, maxAnonMB: float64(peakAnonKiB) / 1024}
		case <-tick.C:
		}
	}
}

// procMemory reads the peak resident set size and the current anonymous
// resident memory (KiB) from a /proc status file; 0 if it cannot.
func procMemory(status string) (hwm, anon int64) {
	b, err := os.ReadFile(status)
	if err != nil {
		return 0, 0
	}
	kib := func(rest string) int64 {
		n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
		return n
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			hwm = kib(rest)
		} else if rest, ok := strings.CutPrefix(line, "RssAnon:"); ok {
			anon = kib(rest)
		}
	}
	return hwm, anon
}

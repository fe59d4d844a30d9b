package raftlog

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

// BenchmarkSave measures durable Saves of 300-byte entries (real
// fdatasync, default 64 MiB segments) and reports the latency percentiles
// next to ns/op. Compare with BenchmarkFdatasync, the floor.
func BenchmarkSave(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			l, _ := mustOpen(b, b.TempDir(), Options{})
			defer mustClose(b, l)
			batch := ents(1, uint64(n), 1, 300)
			lat := make([]time.Duration, 0, b.N)
			index := uint64(1)
			b.SetBytes(int64(n * 300))
			b.ResetTimer()
			for range b.N {
				for i := range batch {
					batch[i].Index = index
					index++
				}
				hs := raftpb.HardState{Term: 1, Vote: 1, Commit: index - 1}
				start := time.Now()
				if err := l.Save(hs, batch); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			reportPercentiles(b, lat)
		})
	}
}

// BenchmarkFdatasync is the cost floor of a durable Save: one 340-byte
// pwrite into preallocated space and one fdatasync, nothing else.
func BenchmarkFdatasync(b *testing.B) {
	f, err := os.OpenFile(filepath.Join(b.TempDir(), "f"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := preallocate(f, 64<<20); err != nil {
		b.Fatal(err)
	}
	buf := entryData(1, 1, 340)
	lat := make([]time.Duration, 0, b.N)
	off := int64(0)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if _, err := f.WriteAt(buf, off); err != nil {
			b.Fatal(err)
		}
		if err := fdatasync(f); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
		off += int64(len(buf))
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Nanoseconds()) }
	b.ReportMetric(pct(0.50), "p50-ns")
	b.ReportMetric(pct(0.99), "p99-ns")
}

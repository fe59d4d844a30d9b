//go:build linux

package storage

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// tableRSS sums the resident kilobytes of this process's mappings of .sst
// files in dir.
func tableRSS(t *testing.T, dir string) int {
	t.Helper()
	abs, _ := filepath.Abs(dir)
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	total, in := 0, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 5 && strings.Contains(fields[0], "-") && len(fields[1]) == 4 {
			// A mapping's header line; anonymous mappings have no path.
			in = len(fields) >= 6 && strings.HasSuffix(fields[5], ".sst") && filepath.Dir(fields[5]) == abs
			continue
		}
		if in && len(fields) >= 2 && fields[0] == "Rss:" {
			n, _ := strconv.Atoi(fields[1])
			total += n
		}
	}
	return total
}

// Trimming drops the tables' resident pages and leaves every value readable.
func TestTrimTableResidency(t *testing.T) {
	dir := t.TempDir()
	opts := DefaultOptions(dir)
	opts.MemTableBytes = 1 << 20
	opts.ResidencyTrimInterval = -1
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, s, 20000, 0)
	s.Close()
	if s, err = Open(opts); err != nil { // the memtable is flushed to tables
		t.Fatal(err)
	}
	defer s.Close()
	readAll := func() {
		resp, err := s.Range(context.Background(), &pb.RangeRequest{Key: []byte("big/"), RangeEnd: []byte("big0")})
		if err != nil || resp.Count != 20000 {
			t.Fatalf("range: %v %v", resp.GetCount(), err)
		}
		for i, kv := range resp.Kvs {
			if string(kv.Key) != fmt.Sprintf("big/%06d", i) || string(kv.Value) != "v" {
				t.Fatalf("kv %d: %s=%s", i, kv.Key, kv.Value)
			}
		}
	}
	readAll()
	before := tableRSS(t, dir)
	if before < 100 {
		t.Fatalf("tables barely resident before the trim: %d KiB", before)
	}
	n, err := trimTableResidency(dir)
	if err != nil || n == 0 {
		t.Fatalf("trim: %d bytes, %v", n, err)
	}
	if after := tableRSS(t, dir); after > before/10 {
		t.Fatalf("tables still resident after the trim: %d KiB of %d", after, before)
	}
	readAll()
}

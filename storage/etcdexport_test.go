package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
	bolt "go.etcd.io/bbolt"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// exportHistory applies a history with overwrites, deletions (one at the
// compaction point 8) and a key on a lease; it returns the compaction
// point.
func exportHistory(t *testing.T, s *Store) int64 {
	t.Helper()
	applyOne(t, s, &pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: 7, TTL: 60}})
	applyOne(t, s, put("a", "1"))                                                                                // 2
	applyOne(t, s, put("a", "2"))                                                                                // 3
	applyOne(t, s, put("b", "1"))                                                                                // 4
	applyOne(t, s, del("b"))                                                                                     // 5
	applyOne(t, s, &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("l"), Value: []byte("x"), Lease: 7}}) // 6
	applyOne(t, s, put("c", "1"))                                                                                // 7
	applyOne(t, s, del("c"))                                                                                     // 8
	applyOne(t, s, put("a", "3"))                                                                                // 9
	return 8
}

// readExportedKeys reads the key bucket of an exported file.
func readExportedKeys(t *testing.T, file string) []string {
	t.Helper()
	db, body, err := openEtcdDB(file, t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if body%SnapshotBlock != 0 {
		t.Errorf("bbolt part is %d bytes, not whole sectors", body)
	}
	var out []string
	err = db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(etcdKeyBucket).ForEach(func(k, v []byte) error {
			rev, sub, kv, tomb, err := decodeEtcdKV(k, v)
			if err != nil {
				return err
			}
			out = append(out, fmt.Sprintf("%d_%d tomb=%v %s", rev, sub, tomb, kv.String()))
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// An export holds, at or below the compaction point, what etcd's own
// compaction keeps (each key's newest change; a deletion only at the point
// itself), whether or not sett's compactor has physically removed the rest
// yet; above the point, every change.
func TestExportEtcdKeepsWhatEtcdCompactionKeeps(t *testing.T) {
	ctx := context.Background()
	physical := openTestStore(t, t.TempDir())
	defer physical.Close()
	compact := exportHistory(t, physical)
	res := applyOne(t, physical, &pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: compact, Physical: true}})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	<-res.Compacted

	// The same history compacted only logically: the revision tree still
	// holds everything.
	logical := openTestStore(t, t.TempDir())
	defer logical.Close()
	exportHistory(t, logical)
	err := logical.db.Update(func(txn *badger.Txn) error { return txn.Set(metaCompact, encodeInt(compact)) })
	if err != nil {
		t.Fatal(err)
	}
	logical.compactRev.Store(compact)
	if n := countPrefix(t, logical, tagRevision); n != 8 {
		t.Fatalf("logically compacted store holds %d changes, want all 8", n)
	}

	dir := t.TempDir()
	want := []string{
		`3_0 tomb=false key:"a" create_revision:2 mod_revision:3 version:2 value:"2" `,
		`6_0 tomb=false key:"l" create_revision:6 mod_revision:6 version:1 value:"x" lease:7 `,
		`8_0 tomb=true key:"c" `,
		`9_0 tomb=false key:"a" create_revision:2 mod_revision:9 version:3 value:"3" `,
	}
	for name, s := range map[string]*Store{"physical": physical, "logical": logical} {
		out := filepath.Join(dir, name+".db")
		res, err := s.ExportEtcd(ctx, out, ExportOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Revision != 9 || res.CompactRevision != compact || res.Entries != int64(len(want)) || res.Leases != 1 {
			t.Errorf("%s: export result %+v", name, res)
		}
		got := readExportedKeys(t, out)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: key bucket\n%q\nwant\n%q", name, got, want)
		}
	}
}

// A failed export leaves neither the output file nor temporary files.
func TestExportEtcdFailureLeavesNothing(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	defer s.Close()
	exportHistory(t, s)
	dir := t.TempDir()
	out := filepath.Join(dir, "out.db")
	if err := os.WriteFile(out, []byte("previous"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// Enough changes for the export to look at its context.
	var batch []Entry
	base := s.AppliedIndex() + 1
	for i := 0; i < exportCommitEvery; i++ {
		batch = append(batch, Entry{Index: base + uint64(i), Req: put(fmt.Sprintf("k%d", i), "v")})
		if len(batch) == 1024 {
			if _, _, err := s.Apply(batch); err != nil {
				t.Fatal(err)
			}
			batch = nil
		}
	}
	if _, err := s.ExportEtcd(ctx, out, ExportOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled export: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if b, _ := os.ReadFile(out); len(entries) != 1 || string(b) != "previous" {
		t.Errorf("after a failed export: %v, out holds %q", entries, b)
	}
	if _, err := s.ExportEtcd(context.Background(), filepath.Join(dir, "missing", "out.db"), ExportOptions{}); err == nil {
		t.Error("export into a missing directory succeeded")
	}
	// An output that is not a regular file (a device, a directory) is
	// never replaced.
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ExportEtcd(context.Background(), sub, ExportOptions{}); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("export onto a directory: %v", err)
	}
	if fi, err := os.Stat(sub); err != nil || !fi.IsDir() {
		t.Errorf("export onto a directory replaced it: %v", err)
	}
}

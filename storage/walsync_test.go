package storage

import (
	"bytes"
	"os"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// The syncer follows Badger's memtable log through rotations.
func TestWALSyncerFollowsRotation(t *testing.T) {
	dir := t.TempDir()
	s := openTinyStore(t, dir)
	defer s.Close()
	start := s.wal.fid
	fill(t, s, 20000, 0) // many 1 MiB memtables
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	newest := int64(-1)
	for _, e := range entries {
		if id, ok := memFileID(e.Name()); ok && id > newest {
			newest = id
		}
	}
	if s.wal.fid <= start || s.wal.fid != newest {
		t.Fatalf("syncer at log %d (started at %d), newest log %d", s.wal.fid, start, newest)
	}
}

// A value long enough for the value log marks its batch for a full sync.
func TestLargeValueSyncsValueLog(t *testing.T) {
	s := openTinyStore(t, t.TempDir())
	defer s.Close()
	for _, tc := range []struct {
		size int
		want bool
	}{{100, false}, {int(s.valueThreshold) + 1, true}} {
		b := s.newBatch()
		if _, err := b.apply(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("k"), Value: bytes.Repeat([]byte("v"), tc.size)}}); err != nil {
			t.Fatal(err)
		}
		if b.valueLog != tc.want {
			t.Fatalf("value of %d bytes (threshold %d): valueLog %v", tc.size, s.valueThreshold, b.valueLog)
		}
		b.txn.Discard()
	}
}

package storage

import (
	"context"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Counting by tombstone marks with corrections for later changes agrees
// with resolving every record, at every revision.
func TestCountCorrections(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	defer s.Close()
	applyOne(t, s, put("a", "1")) // 2
	applyOne(t, s, put("b", "1")) // 3
	applyOne(t, s, del("a"))      // 4
	applyOne(t, s, put("c", "1")) // 5
	applyOne(t, s, put("a", "2")) // 6
	rev, txn, _ := s.snapshot()
	defer txn.Discard()
	v := view{txn}
	want := map[int64]int64{1: 0, 2: 1, 3: 2, 4: 1, 5: 2, 6: 3}
	for r := int64(1); r <= rev; r++ {
		n, err := v.countLive([]byte("a"), []byte("z"), r)
		if err != nil || n != want[r] {
			t.Fatalf("count at %d = %d, %v; want %d", r, n, err, want[r])
		}
		slow, err := v.countCurrent([]byte("a"), []byte("z"), true, r)
		if err != nil || slow != want[r] {
			t.Fatalf("resolved count at %d = %d, %v; want %d", r, slow, err, want[r])
		}
	}
	// Changes after rev in a half-written chunked revision are corrected
	// for too.
	b := s.newBatch()
	defer b.txn.Discard()
	w := b.writer()
	if _, err := w.put(context.Background(), &pb.PutRequest{Key: []byte("d"), Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if n, err := (view{b.txn}).countLive([]byte("a"), []byte("z"), rev); err != nil || n != 3 {
		t.Fatalf("count at %d with a pending write: %d, %v; want 3", rev, n, err)
	}
}

package storage

import (
	"context"
	"fmt"
	"testing"

	"github.com/dgraph-io/badger/v4"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

func countPrefix(t *testing.T, s *Store, tag byte) int {
	t.Helper()
	n := 0
	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = []byte{tag}
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func put(k, v string) *pb.InternalRaftRequest {
	return &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte(k), Value: []byte(v)}}
}

func del(k string) *pb.InternalRaftRequest {
	return &pb.InternalRaftRequest{DeleteRange: &pb.DeleteRangeRequest{Key: []byte(k)}}
}

// Compaction keeps only the newest live version at or below the point,
// drops deleted keys' history and tombstones, and keeps everything above.
func TestCompactionRemovesHistory(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	defer s.Close()
	for i := 0; i < 10; i++ {
		applyOne(t, s, put("live", fmt.Sprint(i))) // revs 2..11
	}
	applyOne(t, s, put("gone", "x")) // 12
	applyOne(t, s, del("gone"))      // 13
	applyOne(t, s, put("late", "y")) // 14
	if got := countPrefix(t, s, tagRevision); got != 13 {
		t.Fatalf("revision tree has %d entries before compaction, want 13", got)
	}
	res := applyOne(t, s, &pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: 13, Physical: true}})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	<-res.Compacted
	// Left: live@11 (readable at 13), the deletion of gone@13 (a watcher
	// may start at 13, as on etcd) and late@14.
	if got := countPrefix(t, s, tagRevision); got != 3 {
		t.Fatalf("revision tree has %d entries after compaction, want 3", got)
	}
	if got := countPrefix(t, s, tagHistory); got != 3 {
		t.Fatalf("history has %d entries after compaction, want 3", got)
	}
	if got := countPrefix(t, s, tagCurrent); got != 2 {
		t.Fatalf("current tree has %d entries after compaction, want 2 (tombstone dropped)", got)
	}
	resp, err := s.Range(context.Background(), &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("z"), Revision: 13})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "9" || resp.Kvs[0].Version != 10 {
		t.Fatalf("range at compaction point: %v", resp.Kvs)
	}
	if _, err := s.Range(context.Background(), &pb.RangeRequest{Key: []byte("live"), Revision: 12}); err != ErrCompacted {
		t.Fatalf("range below compaction point: %v, want ErrCompacted", err)
	}
	if r := applyOne(t, s, &pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: 13}}); r.Err != ErrCompacted {
		t.Fatalf("compact again: %v, want ErrCompacted", r.Err)
	}
	if r := applyOne(t, s, &pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: 99}}); r.Err != ErrFutureRev {
		t.Fatalf("compact future: %v, want ErrFutureRev", r.Err)
	}
	var events []int64
	s.Events(context.Background(), 13, 0, false, func(r Revision) bool { events = append(events, r.Rev); return true })
	if len(events) != 2 || events[0] != 13 || events[1] != 14 {
		t.Fatalf("replay from the compaction point: revisions %v, want [13 14]", events)
	}
	// The next compaction drops the deletion kept at the previous point.
	res = applyOne(t, s, &pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: 14, Physical: true}})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	<-res.Compacted
	if got := countPrefix(t, s, tagRevision); got != 2 {
		t.Fatalf("revision tree has %d entries after the second compaction, want 2", got)
	}
}

// A compaction interrupted by a restart resumes and finishes.
func TestCompactionResumesAfterRestart(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	for i := 0; i < 50; i++ {
		applyOne(t, s, put("k", fmt.Sprint(i)))
	}
	// Schedule logically, then close before the compactor may run: the
	// progress marker stays behind the compaction point.
	s.compactor.stop()
	s.compactor = compactor{}
	s.compactor.wake = make(chan struct{}, 1)
	s.compactor.stopc = make(chan struct{})
	close(s.compactor.stopc)
	res, _, err := s.applyLocked([]Entry{{Index: s.AppliedIndex() + 1, Req: &pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: 40}}}})
	if err != nil || res[0].Err != nil {
		t.Fatal(err, res)
	}
	s.db.Close()

	s = openTestStore(t, dir)
	defer s.Close()
	waitFor(t, func() bool { return countPrefix(t, s, tagRevision) == 12 })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if cond() {
			return
		}
		sleep()
	}
	t.Fatal("condition not reached")
}

// Durability is the default: the zero Options and DefaultOptions both sync.
func TestSyncByDefault(t *testing.T) {
	for _, opts := range []Options{{Dir: t.TempDir()}, DefaultOptions(t.TempDir())} {
		s, err := Open(opts)
		if err != nil {
			t.Fatal(err)
		}
		if s.noSync {
			t.Fatalf("options %+v apply without fsync", opts)
		}
		s.Close()
	}
}

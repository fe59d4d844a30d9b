package storage

import (
	"context"
	"fmt"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// A tiny memtable makes Badger's transaction limit about 150 KiB.
func openTinyStore(t *testing.T, dir string) *Store {
	t.Helper()
	return openStoreWith(t, dir, 1<<20)
}

func fill(t *testing.T, s *Store, n int, lease int64) {
	t.Helper()
	for i := 0; i < n; i += 100 {
		var entries []Entry
		for j := i; j < i+100 && j < n; j++ {
			entries = append(entries, Entry{Index: s.AppliedIndex() + uint64(len(entries)) + 1, Req: &pb.InternalRaftRequest{
				Put: &pb.PutRequest{Key: []byte(fmt.Sprintf("big/%06d", j)), Value: []byte("v"), Lease: lease}}})
		}
		if _, _, err := s.Apply(entries); err != nil {
			t.Fatal(err)
		}
	}
}

// A DeleteRange larger than one Badger transaction is still one revision.
func TestLargeRevisionIsOneRevision(t *testing.T) {
	s := openTinyStore(t, t.TempDir())
	defer s.Close()
	fill(t, s, 5000, 0)
	before := s.Rev()
	res, revs, err := s.Apply([]Entry{
		{Index: s.AppliedIndex() + 1, Req: put("small/a", "1")},
		{Index: s.AppliedIndex() + 2, Req: &pb.InternalRaftRequest{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("big/"), RangeEnd: []byte("big0")}}},
		{Index: s.AppliedIndex() + 3, Req: put("small/b", "2")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if d := res[1].Resp.(*pb.DeleteRangeResponse); d.Deleted != 5000 || d.Header.Revision != before+2 {
		t.Fatalf("delete: %v", d)
	}
	if len(revs) != 3 || len(revs[1].Events) != 5000 || revs[2].Rev != before+3 {
		t.Fatalf("revisions: %d, events in the delete %d", len(revs), len(revs[1].Events))
	}
	if s.Rev() != before+3 {
		t.Fatalf("rev %d, want %d", s.Rev(), before+3)
	}
	resp, err := s.Range(context.Background(), &pb.RangeRequest{Key: []byte("big/"), RangeEnd: []byte("big0"), Revision: before})
	if err != nil || resp.Count != 5000 {
		t.Fatalf("history before the delete: %v %v", resp.GetCount(), err)
	}
	resp, err = s.Range(context.Background(), &pb.RangeRequest{Key: []byte("big/"), RangeEnd: []byte("big0")})
	if err != nil || resp.Count != 0 {
		t.Fatalf("after the delete: %v %v", resp.GetCount(), err)
	}
}

// A revoke of a lease holding more keys than one transaction takes is one
// revision too.
func TestLargeLeaseRevoke(t *testing.T) {
	s := openTinyStore(t, t.TempDir())
	defer s.Close()
	applyOne(t, s, &pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: 7, TTL: 60}})
	fill(t, s, 4000, 7)
	before := s.Rev()
	res := applyOne(t, s, &pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: 7}})
	if res.Err != nil || s.Rev() != before+1 {
		t.Fatalf("revoke: %v, rev %d want %d", res.Err, s.Rev(), before+1)
	}
	if len(s.Leases()) != 0 {
		t.Fatalf("lease still there: %v", s.Leases())
	}
	if keys, _ := s.LeaseKeys(7); len(keys) != 0 {
		t.Fatalf("%d keys still attached", len(keys))
	}
}

// A crash in the middle of a chunked revision leaves nothing of it after
// the restart: keys, values, versions and lease attachments are as before.
func TestIncompleteLargeRevisionRollsBack(t *testing.T) {
	dir := t.TempDir()
	s := openTinyStore(t, dir)
	applyOne(t, s, &pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: 9, TTL: 60}})
	fill(t, s, 3000, 9)
	applyOne(t, s, put("big/000005", "second")) // version 2, lease detached
	before := s.Rev()

	// Write the revision's first chunks, then "crash" before the last.
	b := s.newBatch()
	b.chunked = true
	if err := b.txn.Set(metaPending, encodeInt(b.rev+1)); err != nil {
		t.Fatal(err)
	}
	w := b.writer()
	if _, err := w.deleteRange(context.Background(), &pb.DeleteRangeRequest{Key: []byte("big/"), RangeEnd: []byte("big0")}); err != nil {
		t.Fatal(err)
	}
	b.txn.Discard()
	if n := countPrefix(t, s, tagRevision); n <= 3001 {
		t.Fatalf("no chunk was committed (%d revision entries)", n)
	}
	s.compactor.stop()
	s.db.Close()

	s = openTinyStore(t, dir)
	defer s.Close()
	if s.Rev() != before {
		t.Fatalf("rev %d after rollback, want %d", s.Rev(), before)
	}
	resp, err := s.Range(context.Background(), &pb.RangeRequest{Key: []byte("big/"), RangeEnd: []byte("big0")})
	if err != nil || resp.Count != 3000 {
		t.Fatalf("count after rollback: %v %v", resp.GetCount(), err)
	}
	for _, kv := range resp.Kvs {
		want := int64(9)
		if string(kv.Key) == "big/000005" {
			want = 0
			if kv.Version != 2 || string(kv.Value) != "second" {
				t.Fatalf("restored %s: %v", kv.Key, kv)
			}
		}
		if kv.Lease != want || kv.ModRevision > before {
			t.Fatalf("restored %s: %v", kv.Key, kv)
		}
	}
	if keys, _ := s.LeaseKeys(9); len(keys) != 2999 {
		t.Fatalf("%d keys attached after rollback, want 2999", len(keys))
	}
	if n := countPrefix(t, s, tagRevision); n != 3001 {
		t.Fatalf("%d revision entries after rollback, want 3001", n)
	}
	// The store goes on from there.
	if r := applyOne(t, s, put("after", "x")); r.Err != nil || s.Rev() != before+1 {
		t.Fatalf("write after rollback: %v at %d", r.Err, s.Rev())
	}
}

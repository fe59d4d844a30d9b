package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// randomHistory is a deterministic command sequence: puts, deletes, Txns,
// leases with attached keys, revokes and compactions.
func randomHistory(seed int64, n int) []*pb.InternalRaftRequest {
	rng := rand.New(rand.NewSource(seed))
	var out []*pb.InternalRaftRequest
	rev := int64(1)
	compacted := int64(0)
	lease := int64(0)
	for i := 0; i < n; i++ {
		k := fmt.Sprintf("k%02d", rng.Intn(20))
		switch r := rng.Intn(20); {
		case r < 10:
			p := &pb.PutRequest{Key: []byte(k), Value: []byte(fmt.Sprint(i))}
			if lease != 0 && rng.Intn(3) == 0 {
				p.Lease = lease
			}
			out = append(out, &pb.InternalRaftRequest{Put: p})
			rev++
		case r < 13:
			out = append(out, del(k))
		case r < 15:
			out = append(out, &pb.InternalRaftRequest{Txn: &pb.TxnRequest{
				Success: []*pb.RequestOp{
					{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k + "a"), Value: []byte("t")}}},
					{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte(k + "b")}}},
					{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k + "c"), Value: []byte("u")}}},
				},
			}})
			rev++
		case r < 16:
			lease = int64(1000 + i)
			out = append(out, &pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: lease, TTL: 60}})
		case r < 17 && lease != 0:
			out = append(out, &pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: lease}})
			lease = 0
		case r < 18 && rev > compacted+3:
			c := compacted + 1 + rng.Int63n(rev-compacted-1)
			out = append(out, &pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: c}})
			compacted = c
		default:
			out = append(out, put(k, "x"))
			rev++
		}
	}
	return out
}

func applyAll(t *testing.T, s *Store, reqs []*pb.InternalRaftRequest) {
	t.Helper()
	for _, r := range reqs {
		applyOne(t, s, r)
	}
}

// waitCompacted waits for physical compaction to catch up.
func waitCompacted(t *testing.T, s *Store) {
	t.Helper()
	if err := s.waitCompactorIdle(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// Two stores that applied the same commands hash alike at every readable
// revision, whatever their physical compaction progress; a different
// history hashes differently.
func TestHashKVDeterministic(t *testing.T) {
	cmds := randomHistory(7, 300)
	a := openTestStore(t, t.TempDir())
	defer a.Close()
	b := openTestStore(t, t.TempDir())
	defer b.Close()
	applyAll(t, a, cmds)
	ctx := context.Background()
	// b applies the same commands in batches (other transaction
	// boundaries) and is hashed before its compactor has caught up.
	for i := 0; i < len(cmds); i += 7 {
		var es []Entry
		for j := i; j < min(i+7, len(cmds)); j++ {
			es = append(es, Entry{Index: b.AppliedIndex() + uint64(len(es)) + 1, Req: cmds[j]})
		}
		if _, _, err := b.Apply(es); err != nil {
			t.Fatal(err)
		}
	}
	if a.Rev() != b.Rev() || a.CompactRev() != b.CompactRev() {
		t.Fatalf("revisions differ: %d/%d vs %d/%d", a.Rev(), a.CompactRev(), b.Rev(), b.CompactRev())
	}
	hb := map[int64]uint32{}
	for rev := b.CompactRev(); rev <= b.Rev(); rev++ {
		h, _, err := b.HashKV(ctx, rev)
		if err != nil {
			t.Fatal(rev, err)
		}
		hb[rev] = h.Hash
	}
	waitCompacted(t, a)
	seen := map[uint32]int64{}
	for rev := a.CompactRev(); rev <= a.Rev(); rev++ {
		h, cur, err := a.HashKV(ctx, rev)
		if err != nil {
			t.Fatal(rev, err)
		}
		if cur != a.Rev() || h.Revision != rev || h.CompactRevision != a.CompactRev() {
			t.Fatalf("rev %d: got %+v current %d", rev, h, cur)
		}
		if h.Hash != hb[rev] {
			t.Errorf("rev %d: hash %d on one store, %d on the other", rev, h.Hash, hb[rev])
		}
		if prev, dup := seen[h.Hash]; dup {
			t.Errorf("revisions %d and %d hash alike", prev, rev)
		}
		seen[h.Hash] = rev
	}
	if _, _, err := a.HashKV(ctx, a.CompactRev()-1); !errors.Is(err, ErrCompacted) {
		t.Errorf("below the compaction point: %v", err)
	}
	if _, _, err := a.HashKV(ctx, a.Rev()+1); !errors.Is(err, ErrFutureRev) {
		t.Errorf("future revision: %v", err)
	}
	h0, _, _ := a.HashKV(ctx, 0)
	hn, _, _ := a.HashKV(ctx, a.Rev())
	if h0 != hn {
		t.Errorf("revision 0 is not the current one: %+v vs %+v", h0, hn)
	}
	wa, _, err := a.Hash(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wb, _, _ := b.Hash(ctx)
	if wa != wb {
		t.Errorf("Hash differs: %d vs %d", wa, wb)
	}
	// One more change anywhere changes the hash.
	applyOne(t, a, put("k00", "changed"))
	applyOne(t, b, put("k00", "changed!"))
	x, _, _ := a.HashKV(ctx, 0)
	y, _, _ := b.HashKV(ctx, 0)
	if x.Hash == y.Hash {
		t.Error("different values hash alike")
	}
}

// etcd's hash of the same history: put a=b on a fresh store, as
// `etcdctl endpoint hashkv` reports it on etcd 3.6.
func TestHashKVMatchesEtcd(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	defer s.Close()
	applyOne(t, s, put("a", "b"))
	h, _, err := s.HashKV(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if h.Hash != 3628877040 || h.Revision != 2 || h.CompactRevision != -1 {
		t.Fatalf("got %+v, want etcd's 3628877040 at revision 2", h)
	}
}

func writeSnapshot(t *testing.T, s *Store, path string) {
	t.Helper()
	sn, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	var buf bytes.Buffer
	n, err := sn.WriteTo(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != sn.Size() || int64(buf.Len()) != sn.Size() || n%SnapshotBlock != 0 {
		t.Fatalf("wrote %d bytes (buffer %d), announced %d", n, buf.Len(), sn.Size())
	}
	sum := sha256.Sum256(buf.Bytes())
	buf.Write(sum[:])
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// A snapshot restores to a store with the same history, leases and hash;
// a damaged one is refused.
func TestSnapshotRestore(t *testing.T) {
	ctx := context.Background()
	src := openTestStore(t, t.TempDir())
	defer src.Close()
	applyAll(t, src, randomHistory(3, 200))
	applyOne(t, src, &pb.InternalRaftRequest{Alarm: &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: 1, Alarm: pb.AlarmType_NOSPACE}})
	file := filepath.Join(t.TempDir(), "snap.db")
	writeSnapshot(t, src, file)
	want, _, err := src.HashKV(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}

	dir := filepath.Join(t.TempDir(), "restored")
	rev, err := RestoreSnapshot(file, dir, RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rev != src.Rev() {
		t.Fatalf("restored at %d, want %d", rev, src.Rev())
	}
	dst := openTestStore(t, dir)
	got, _, err := dst.HashKV(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got != want || dst.CompactRev() != src.CompactRev() {
		t.Errorf("restored hash %+v compact %d, want %+v compact %d", got, dst.CompactRev(), want, src.CompactRev())
	}
	if fmt.Sprint(dst.Leases()) != fmt.Sprint(src.Leases()) {
		t.Errorf("leases %v, want %v", dst.Leases(), src.Leases())
	}
	if a := dst.Alarms(pb.AlarmType_NONE); len(a) != 0 {
		t.Errorf("alarms restored: %v", a)
	}
	applyOne(t, dst, put("after", "restore"))
	dst.Close()

	if _, err := RestoreSnapshot(file, dir, RestoreOptions{}); err == nil {
		t.Error("restored into a non-empty directory")
	}

	// --bump-revision and --mark-compacted.
	dir2 := filepath.Join(t.TempDir(), "bumped")
	rev, err = RestoreSnapshot(file, dir2, RestoreOptions{BumpRevision: 1000, MarkCompacted: true})
	if err != nil {
		t.Fatal(err)
	}
	b := openTestStore(t, dir2)
	if rev != src.Rev()+1000 || b.Rev() != rev || b.CompactRev() != rev {
		t.Errorf("bumped: rev %d store %d/%d, want %d", rev, b.Rev(), b.CompactRev(), src.Rev()+1000)
	}
	if _, err := b.Range(ctx, &pb.RangeRequest{Key: []byte("k01"), Revision: rev - 1}); !errors.Is(err, ErrCompacted) {
		t.Errorf("read below the marked compaction: %v", err)
	}
	r1, _ := src.Range(ctx, &pb.RangeRequest{Key: []byte("k"), RangeEnd: []byte("l")})
	r2, _ := b.Range(ctx, &pb.RangeRequest{Key: []byte("k"), RangeEnd: []byte("l")})
	if fmt.Sprint(r1.Kvs) != fmt.Sprint(r2.Kvs) {
		t.Errorf("bumped store reads differently")
	}
	res := applyOne(t, b, put("next", "x"))
	if res.Resp.(*pb.PutResponse).Header.Revision != rev+1 {
		t.Errorf("next write at %d, want %d", res.Resp.(*pb.PutResponse).Header.Revision, rev+1)
	}
	b.Close()

	// Damage one byte: the checksum catches it.
	data, _ := os.ReadFile(file)
	data[len(data)/2] ^= 1
	bad := filepath.Join(t.TempDir(), "bad.db")
	os.WriteFile(bad, data, 0o600)
	if _, err := RestoreSnapshot(bad, filepath.Join(t.TempDir(), "x"), RestoreOptions{}); !errors.Is(err, ErrBadSnapshot) {
		t.Errorf("damaged snapshot: %v", err)
	}
	os.WriteFile(bad, data[:len(data)-sha256.Size], 0o600)
	if _, err := RestoreSnapshot(bad, filepath.Join(t.TempDir(), "y"), RestoreOptions{}); !errors.Is(err, ErrBadSnapshot) {
		t.Errorf("snapshot without a trailer: %v", err)
	}
}

// Alarms persist, answer as etcd's, and cap writes while NOSPACE is on.
func TestAlarms(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	alarm := func(a pb.AlarmRequest_AlarmAction, m uint64, typ pb.AlarmType) *pb.AlarmResponse {
		t.Helper()
		res := applyOne(t, s, &pb.InternalRaftRequest{Alarm: &pb.AlarmRequest{Action: a, MemberID: m, Alarm: typ}})
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		return res.Resp.(*pb.AlarmResponse)
	}
	if r := alarm(pb.AlarmRequest_ACTIVATE, 7, pb.AlarmType_NONE); len(r.Alarms) != 0 {
		t.Errorf("activating NONE: %v", r.Alarms)
	}
	if r := alarm(pb.AlarmRequest_DEACTIVATE, 7, pb.AlarmType_NOSPACE); len(r.Alarms) != 0 {
		t.Errorf("deactivating an inactive alarm: %v", r.Alarms)
	}
	for i := 0; i < 2; i++ {
		if r := alarm(pb.AlarmRequest_ACTIVATE, 7, pb.AlarmType_NOSPACE); len(r.Alarms) != 1 || r.Alarms[0].MemberID != 7 {
			t.Errorf("activating: %v", r.Alarms)
		}
	}
	alarm(pb.AlarmRequest_ACTIVATE, 3, pb.AlarmType_CORRUPT)
	if !s.NoSpace() || len(s.Alarms(pb.AlarmType_NONE)) != 2 || len(s.Alarms(pb.AlarmType_CORRUPT)) != 1 {
		t.Fatalf("alarms: %v", s.Alarms(pb.AlarmType_NONE))
	}
	s.Close()
	s = openTestStore(t, dir)
	defer s.Close()
	if got := fmt.Sprint(s.Alarms(pb.AlarmType_NONE)); got != "[memberID:7 alarm:NOSPACE  memberID:3 alarm:CORRUPT ]" {
		t.Fatalf("after reopening: %s", got)
	}
	b := s.newBatch()
	defer b.txn.Discard()
	if err := b.capped(del("a")); !errors.Is(err, ErrCorrupt) {
		t.Errorf("delete with CORRUPT: %v", err)
	}
	if err := b.capped(&pb.InternalRaftRequest{Alarm: &pb.AlarmRequest{}}); err != nil {
		t.Errorf("alarm with CORRUPT: %v", err)
	}
	alarm(pb.AlarmRequest_DEACTIVATE, 3, pb.AlarmType_CORRUPT)
	for _, c := range []struct {
		req    *pb.InternalRaftRequest
		capped bool
	}{
		{put("a", "b"), true},
		{&pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: 1, TTL: 5}}, true},
		{&pb.InternalRaftRequest{Txn: &pb.TxnRequest{Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{
			Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("x")}}}}}}}}}}, true},
		{&pb.InternalRaftRequest{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte("x")}}}}}}, false},
		{del("a"), false},
		{&pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: 1}}, false},
		{&pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: 1}}, false},
	} {
		if err := b.capped(c.req); (err != nil) != c.capped || (err != nil && !errors.Is(err, ErrNoSpace)) {
			t.Errorf("%v: capped = %v, want %v", c.req, err, c.capped)
		}
	}
	alarm(pb.AlarmRequest_DEACTIVATE, 7, pb.AlarmType_NOSPACE)
	if s.NoSpace() {
		t.Fatal("NOSPACE still active")
	}
}

// Defragmenting after a compaction gives the space of the history back,
// and loses nothing.
func TestDefragmentReclaims(t *testing.T) {
	dir := t.TempDir()
	opts := DefaultOptions(dir)
	opts.MemTableBytes = 4 << 20
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	val := bytes.Repeat([]byte("v"), 32<<10)
	for i := 0; i < 400; i++ {
		applyOne(t, s, &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte(fmt.Sprintf("key%d", i%10)), Value: append(val, byte(i%256))}})
	}
	full, err := s.MeasureSpace()
	if err != nil {
		t.Fatal(err)
	}
	res := applyOne(t, s, &pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: s.Rev(), Physical: true}})
	<-res.Compacted
	if err := s.Defragment(context.Background()); err != nil {
		t.Fatal(err)
	}
	after, err := s.MeasureSpace()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("size %d before, %d after defragmentation (in use %d, %d)", full.Total, after.Total, full.InUse, after.InUse)
	if after.Total > full.Total/3 {
		t.Errorf("defragmentation left %d of %d bytes", after.Total, full.Total)
	}
	r, err := s.Range(context.Background(), &pb.RangeRequest{Key: []byte("key"), RangeEnd: []byte("kez")})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Kvs) != 10 || r.Kvs[9].Version != 40 || !bytes.Equal(r.Kvs[9].Value, append(val, byte(399%256))) {
		t.Fatalf("data after defragmentation: %d keys", len(r.Kvs))
	}
	applyOne(t, s, put("after", "defrag"))
}

package storage

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"sort"
	"testing"

	"github.com/golang/protobuf/proto"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// model is the obvious MVCC: the full key space after every revision.
type model struct {
	states  map[int64]map[string]mvccpb.KeyValue
	rev     int64
	compact int64
}

func newModel() *model {
	return &model{states: map[int64]map[string]mvccpb.KeyValue{1: {}}, rev: 1, compact: -1}
}

func (m *model) next() map[string]mvccpb.KeyValue {
	cur := m.states[m.rev]
	n := make(map[string]mvccpb.KeyValue, len(cur))
	for k, v := range cur {
		n[k] = v
	}
	return n
}

func (m *model) put(key, val string) {
	n := m.next()
	rev := m.rev + 1
	kv, ok := n[key]
	if ok {
		kv.Version++
	} else {
		kv = mvccpb.KeyValue{Key: []byte(key), CreateRevision: rev, Version: 1}
	}
	kv.ModRevision = rev
	kv.Value = []byte(val)
	n[key] = kv
	m.rev = rev
	m.states[rev] = n
}

func (m *model) deleteRange(key, end string) int {
	n := m.next()
	deleted := 0
	for k := range n {
		if inRange(k, key, end) {
			delete(n, k)
			deleted++
		}
	}
	if deleted > 0 {
		m.rev++
		m.states[m.rev] = n
	}
	return deleted
}

func inRange(k, key, end string) bool {
	if end == "" {
		return k == key
	}
	return k >= key && k < end
}

func (m *model) rangeAt(key, end string, rev int64) []mvccpb.KeyValue {
	var out []mvccpb.KeyValue
	for k, kv := range m.states[rev] {
		if inRange(k, key, end) {
			out = append(out, kv)
		}
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i].Key, out[j].Key) < 0 })
	return out
}

func openTestStore(t *testing.T, dir string) *Store {
	t.Helper()
	return openStoreWith(t, dir, 8<<20)
}

// openStoreWith opens a store with small caches and the given memtable
// size (Badger's transaction limit is 15% of it).
func openStoreWith(t *testing.T, dir string, memtable int64) *Store {
	t.Helper()
	opts := DefaultOptions(dir)
	opts.MemTableBytes = memtable
	opts.BlockCacheBytes = min(8<<20, memtable)
	opts.IndexCacheBytes = min(4<<20, memtable)
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func applyOne(t *testing.T, s *Store, req *pb.InternalRaftRequest) Result {
	t.Helper()
	res, _, err := s.Apply([]Entry{{Index: s.AppliedIndex() + 1, Req: req}})
	if err != nil {
		t.Fatal(err)
	}
	return res[0]
}

// TestModelRandomized drives random puts, deletes, compactions and reopens
// and checks every range at every readable revision against the model.
func TestModelRandomized(t *testing.T) {
	for seed := int64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewSource(seed))
			dir := t.TempDir()
			s := openTestStore(t, dir)
			defer func() { s.Close() }()
			m := newModel()
			keys := []string{"a", "a/1", "a/2", "b", "b\x00", "c", "d/x", "d/y", "e"}
			ctx := context.Background()
			for step := 0; step < 400; step++ {
				// A batch of several commands exercises group commit.
				var entries []Entry
				var expect []func(Result)
				for n := 1 + rng.Intn(4); n > 0; n-- {
					idx := s.AppliedIndex() + uint64(len(entries)) + 1
					switch op := rng.Intn(10); {
					case op < 6:
						k, v := keys[rng.Intn(len(keys))], fmt.Sprint(rng.Int())
						m.put(k, v)
						entries = append(entries, Entry{Index: idx, Req: &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte(k), Value: []byte(v)}}})
						want := m.rev
						expect = append(expect, func(r Result) {
							if r.Err != nil || r.Resp.(*pb.PutResponse).Header.Revision != want {
								t.Fatalf("put: %+v, want rev %d", r, want)
							}
						})
					case op < 9:
						k := keys[rng.Intn(len(keys))]
						end := ""
						if rng.Intn(2) == 0 {
							end = k + "\xff"
						}
						want := int64(m.deleteRange(k, end))
						var endb []byte
						if end != "" {
							endb = []byte(end)
						}
						entries = append(entries, Entry{Index: idx, Req: &pb.InternalRaftRequest{DeleteRange: &pb.DeleteRangeRequest{Key: []byte(k), RangeEnd: endb}}})
						expect = append(expect, func(r Result) {
							if r.Err != nil || r.Resp.(*pb.DeleteRangeResponse).Deleted != want {
								t.Fatalf("delete: %+v, want %d deleted", r, want)
							}
						})
					default:
						if m.rev <= m.compact+1 {
							continue
						}
						c := m.compact + 1 + rng.Int63n(m.rev-m.compact)
						if c < 1 {
							c = 1
						}
						m.compact = c
						entries = append(entries, Entry{Index: idx, Req: &pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: c}}})
						wait := rng.Intn(2) == 0
						expect = append(expect, func(r Result) {
							if r.Err != nil {
								t.Fatalf("compact %d: %v", c, r.Err)
							}
							if wait {
								<-r.Compacted
							}
						})
					}
				}
				if len(entries) == 0 {
					continue
				}
				res, _, err := s.Apply(entries)
				if err != nil {
					t.Fatal(err)
				}
				for i, f := range expect {
					f(res[i])
				}
				if s.Rev() != m.rev {
					t.Fatalf("store rev %d, model %d", s.Rev(), m.rev)
				}
				if rng.Intn(40) == 0 {
					s.Close()
					s = openTestStore(t, dir)
					if s.Rev() != m.rev || s.CompactRev() != m.compact {
						t.Fatalf("after reopen rev %d compact %d, want %d %d", s.Rev(), s.CompactRev(), m.rev, m.compact)
					}
				}
				// Check a few ranges at random readable revisions.
				for q := 0; q < 3; q++ {
					lo := max(m.compact, 1)
					rev := lo + rng.Int63n(m.rev-lo+1)
					k := keys[rng.Intn(len(keys))]
					end := []byte(nil)
					switch rng.Intn(3) {
					case 1:
						end = []byte(k + "\xff")
					case 2:
						end = []byte{0}
					}
					if rng.Intn(2) == 0 {
						rev = m.rev // the head: counting reads no records
					}
					req := &pb.RangeRequest{Key: []byte(k), RangeEnd: end, Revision: rev}
					switch rng.Intn(4) {
					case 0:
						req.Limit = 1 + rng.Int63n(3)
					case 1:
						req.CountOnly = true
					}
					resp, err := s.Range(ctx, req)
					if err != nil {
						t.Fatalf("range at %d: %v", rev, err)
					}
					mend := string(end)
					if len(end) == 1 && end[0] == 0 {
						mend = "\xff\xff\xff\xff"
					}
					want := m.rangeAt(k, mend, rev)
					if resp.Count != int64(len(want)) {
						t.Fatalf("step %d range %q-%q at %d (%v): count %d, want %d", step, k, end, rev, req, resp.Count, len(want))
					}
					if req.CountOnly {
						want = nil
					} else if req.Limit > 0 && int64(len(want)) > req.Limit {
						want = want[:req.Limit]
						if !resp.More {
							t.Fatalf("step %d: more not set", step)
						}
					}
					if len(resp.Kvs) != len(want) {
						t.Fatalf("step %d range %q-%q at %d (%v): got %d kvs, want %d", step, k, end, rev, req, len(resp.Kvs), len(want))
					}
					for i := range want {
						if !proto.Equal(&want[i], resp.Kvs[i]) {
							t.Fatalf("step %d range %q at %d: kv %d = %v, want %v", step, k, rev, i, resp.Kvs[i], &want[i])
						}
					}
					if resp.Header.Revision != m.rev {
						t.Fatalf("header revision %d, want %d", resp.Header.Revision, m.rev)
					}
				}
				if m.compact > 1 {
					if _, err := s.Range(ctx, &pb.RangeRequest{Key: []byte("a"), Revision: m.compact - 1}); err != ErrCompacted {
						t.Fatalf("range below compaction: %v", err)
					}
				}
			}
		})
	}
}

package watchhub

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	gogoproto "github.com/gogo/protobuf/proto"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/sett-dev/sett/replication"
	"github.com/sett-dev/sett/storage"
)

// testEnv is a store with its applier and a hub fed by it. The observer
// also records every revision, the reference the tests compare against.
type testEnv struct {
	t     testing.TB
	store *storage.Store
	local *replication.Node
	hub   *Hub

	mu      sync.Mutex
	history []storage.Revision
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newTestEnv(t testing.TB, cfg Config) *testEnv {
	t.Helper()
	opts := storage.DefaultOptions(t.TempDir())
	opts.UnsafeNoSync = true
	opts.BlockCacheBytes, opts.IndexCacheBytes, opts.MemTableBytes = 8<<20, 4<<20, 16<<20
	opts.Logger = quietLogger()
	store, err := storage.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	e := &testEnv{t: t, store: store}
	e.hub = New(store, cfg)
	e.local, err = replication.StartSingle(store, opts.Dir, quietLogger(), func(revs []storage.Revision) {
		e.mu.Lock()
		e.history = append(e.history, revs...)
		e.mu.Unlock()
		e.hub.Notify(revs)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.hub.Close()
		e.local.Stop()
		store.Close()
	})
	return e
}

func (e *testEnv) propose(req *pb.InternalRaftRequest) storage.Result {
	e.t.Helper()
	res, err := e.local.Propose(context.Background(), req)
	if err != nil {
		e.t.Fatalf("propose: %v", err)
	}
	if res.Err != nil {
		e.t.Fatalf("apply %v: %v", req, res.Err)
	}
	return res
}

func (e *testEnv) put(key, val string) int64 {
	e.t.Helper()
	res := e.propose(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte(key), Value: []byte(val)}})
	return res.Resp.(*pb.PutResponse).Header.Revision
}

func (e *testEnv) del(key, end string) int64 {
	e.t.Helper()
	r := &pb.DeleteRangeRequest{Key: []byte(key)}
	if end != "" {
		r.RangeEnd = []byte(end)
	}
	res := e.propose(&pb.InternalRaftRequest{DeleteRange: r})
	return res.Resp.(*pb.DeleteRangeResponse).Header.Revision
}

func putOp(k, v string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k), Value: []byte(v)}}}
}

func delOp(k string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte(k)}}}
}

func (e *testEnv) txn(ops ...*pb.RequestOp) int64 {
	e.t.Helper()
	res := e.propose(&pb.InternalRaftRequest{Txn: &pb.TxnRequest{Success: ops}})
	return res.Resp.(*pb.TxnResponse).Header.Revision
}

func (e *testEnv) compact(rev int64) {
	e.t.Helper()
	e.propose(&pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: rev}})
}

// revisions is a copy of the recorded history.
func (e *testEnv) revisions() []storage.Revision {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]storage.Revision(nil), e.history...)
}

// spec is what a watcher watches, for computing what it must receive.
type spec struct {
	key, end         []byte // as requested: end nil one key, "\x00" from key
	noPut, noDelete  bool
	prevKV           bool
	start            int64
	fragment, notify bool
}

func (sp spec) request(id int64) *pb.WatchCreateRequest {
	r := &pb.WatchCreateRequest{Key: sp.key, RangeEnd: sp.end, StartRevision: sp.start, WatchId: id,
		PrevKv: sp.prevKV, Fragment: sp.fragment, ProgressNotify: sp.notify}
	if sp.noPut {
		r.Filters = append(r.Filters, pb.WatchCreateRequest_NOPUT)
	}
	if sp.noDelete {
		r.Filters = append(r.Filters, pb.WatchCreateRequest_NODELETE)
	}
	return r
}

func (sp spec) matches(ev *mvccpb.Event) bool {
	end := sp.end
	if len(end) == 1 && end[0] == 0 {
		end = []byte{}
	} else if len(end) == 0 {
		end = nil
	}
	key := sp.key
	if len(key) == 0 {
		key = []byte{0}
	}
	if !inRange(ev.Kv.Key, key, end) {
		return false
	}
	return !(sp.noPut && ev.Type == mvccpb.PUT) && !(sp.noDelete && ev.Type == mvccpb.DELETE)
}

// expected is what a watcher from revision from must receive, revision by
// revision, according to the history (prev_kv as the live path has it).
func expected(hist []storage.Revision, sp spec, from int64) []storage.Revision {
	var out []storage.Revision
	for _, r := range hist {
		if r.Rev < from {
			continue
		}
		var evs []*mvccpb.Event
		for _, ev := range r.Events {
			if sp.matches(ev) {
				evs = append(evs, ev)
			}
		}
		if len(evs) > 0 {
			out = append(out, storage.Revision{Rev: r.Rev, Events: evs})
		}
	}
	return out
}

// next takes one response from s, failing after d.
func next(t testing.TB, s *Stream, d time.Duration) Out {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	out, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("no response within %v: %v", d, err)
	}
	return out
}

// none checks that s has nothing to send for d.
func none(t testing.TB, s *Stream, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if out, err := s.Next(ctx); err == nil {
		t.Fatalf("unexpected response: %s", show(out.Resp))
	}
}

func show(m gogoproto.Message) string {
	return strings.TrimSpace(gogoproto.CompactTextString(m))
}

// wantResp compares a response with the wanted one.
func wantResp(t testing.TB, got *pb.WatchResponse, want *pb.WatchResponse) {
	t.Helper()
	if !gogoproto.Equal(got, want) {
		t.Fatalf("response:\n got  %s\n want %s", show(got), show(want))
	}
}

func hdr(rev int64) *pb.ResponseHeader { return &pb.ResponseHeader{Revision: rev} }

// eventsOf flattens revisions into their events.
func eventsOf(revs []storage.Revision) []*mvccpb.Event {
	var out []*mvccpb.Event
	for _, r := range revs {
		out = append(out, r.Events...)
	}
	return out
}

// withoutPrev strips prev_kv, as a watcher without prev_kv receives.
func withoutPrev(evs []*mvccpb.Event) []*mvccpb.Event {
	out := make([]*mvccpb.Event, len(evs))
	for i, ev := range evs {
		c := *ev
		c.PrevKv = nil
		out[i] = &c
	}
	return out
}

func sameEvents(a, b []*mvccpb.Event) error {
	if len(a) != len(b) {
		return fmt.Errorf("%d events, want %d", len(a), len(b))
	}
	for i := range a {
		if !gogoproto.Equal(a[i], b[i]) {
			return fmt.Errorf("event %d: got %s, want %s", i, show(a[i]), show(b[i]))
		}
	}
	return nil
}

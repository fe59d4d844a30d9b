package watchhub

import (
	"context"
	"fmt"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/sett-dev/sett/storage"
)

const wait = 5 * time.Second

// Create requests get etcd's created (or refused) responses, in request
// order, with etcd's watch ID allocation.
func TestCreateResponses(t *testing.T) {
	e := newTestEnv(t, Config{})
	rev := e.put("a", "1")
	refused := func(reason string) *pb.WatchResponse {
		return &pb.WatchResponse{Header: hdr(rev), WatchId: InvalidWatchID, Created: true, Canceled: true, CancelReason: reason}
	}
	created := func(id int64) *pb.WatchResponse {
		return &pb.WatchResponse{Header: hdr(rev), WatchId: id, Created: true}
	}
	s := e.hub.NewStream()
	defer s.Close()
	cases := []struct {
		name string
		req  *pb.WatchCreateRequest
		want *pb.WatchResponse
	}{
		{"auto id 0", &pb.WatchCreateRequest{Key: []byte("a")}, created(0)},
		{"auto id 1", &pb.WatchCreateRequest{Key: []byte("a"), RangeEnd: []byte("b")}, created(1)},
		{"explicit id", &pb.WatchCreateRequest{Key: []byte("a"), WatchId: 7}, created(7)},
		{"duplicate id", &pb.WatchCreateRequest{Key: []byte("a"), WatchId: 7}, refused(ErrWatcherDuplicateID.Error())},
		{"duplicate of an auto id", &pb.WatchCreateRequest{Key: []byte("a"), WatchId: 1}, refused(ErrWatcherDuplicateID.Error())},
		{"explicit 2 then auto skips it", &pb.WatchCreateRequest{Key: []byte("a"), WatchId: 2}, created(2)},
		{"auto id 3", &pb.WatchCreateRequest{Key: []byte("a")}, created(3)},
		{"negative id", &pb.WatchCreateRequest{Key: []byte("a"), WatchId: -5}, created(-5)},
		{"negative start", &pb.WatchCreateRequest{Key: []byte("a"), StartRevision: -1}, refused(rpctypes.ErrCompacted.Error())},
		{"key equals end", &pb.WatchCreateRequest{Key: []byte("b"), RangeEnd: []byte("b")}, refused(ErrEmptyWatcherRange.Error())},
		{"key after end", &pb.WatchCreateRequest{Key: []byte("c"), RangeEnd: []byte("b")}, refused(ErrEmptyWatcherRange.Error())},
		{"from key", &pb.WatchCreateRequest{Key: []byte("c"), RangeEnd: []byte{0}}, created(4)},
		{"empty key", &pb.WatchCreateRequest{}, created(5)},
		{"future start", &pb.WatchCreateRequest{Key: []byte("a"), StartRevision: rev + 10}, created(6)},
		{"auto id skips 7", &pb.WatchCreateRequest{Key: []byte("a")}, created(8)},
	}
	for _, c := range cases {
		if !s.Watch(c.req) {
			t.Fatal("stream closed")
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { wantResp(t, next(t, s, wait).Resp, c.want) })
	}
	none(t, s, 50*time.Millisecond)
}

// Live events follow each watcher's range, filters and prev_kv, one
// response per revision with that revision in the header; a Txn's events
// stay together and in order.
func TestLiveEvents(t *testing.T) {
	specs := []struct {
		name string
		sp   spec
	}{
		{"one key", spec{key: []byte("a")}},
		{"one key prev_kv", spec{key: []byte("a"), prevKV: true}},
		{"range", spec{key: []byte("a"), end: []byte("c")}},
		{"prefix", spec{key: []byte("b"), end: []byte("c"), prevKV: true}},
		{"from key", spec{key: []byte("b"), end: []byte{0}}},
		{"all keys", spec{key: []byte{0}, end: []byte{0}, prevKV: true}},
		{"empty key is \\x00", spec{key: nil}},
		{"noput", spec{key: []byte("a"), end: []byte("z"), noPut: true, prevKV: true}},
		{"nodelete", spec{key: []byte("a"), end: []byte("z"), noDelete: true}},
		{"both filters", spec{key: []byte("a"), end: []byte("z"), noPut: true, noDelete: true}},
	}
	e := newTestEnv(t, Config{})
	start := e.put("a", "0")
	s := e.hub.NewStream()
	defer s.Close()
	for i, c := range specs {
		s.Watch(c.sp.request(int64(i + 1)))
	}
	for range specs {
		if r := next(t, s, wait).Resp; !r.Created || r.Canceled {
			t.Fatalf("not created: %s", show(r))
		}
	}
	e.put("a", "1")
	e.put("b", "1")
	e.put("\x00", "zero")
	e.txn(putOp("a", "2"), putOp("bb", "1"), delOp("b"), putOp("zz", "1"))
	e.del("a", "c")
	e.put("c", "1")
	e.del("nothing", "")
	end := e.put("a", "3")
	hist := e.revisions()

	got := map[int64][]*pb.WatchResponse{}
	for {
		out, ok := tryNext(s, 300*time.Millisecond)
		if !ok {
			break
		}
		got[out.Resp.WatchId] = append(got[out.Resp.WatchId], out.Resp)
	}
	for i, c := range specs {
		t.Run(c.name, func(t *testing.T) {
			want := expected(hist, c.sp, start+1)
			resps := got[int64(i+1)]
			if len(resps) != len(want) {
				t.Fatalf("%d responses, want %d (one per revision)", len(resps), len(want))
			}
			for j, r := range want {
				evs := r.Events
				if !c.sp.prevKV {
					evs = withoutPrev(evs)
				}
				wantResp(t, resps[j], &pb.WatchResponse{Header: hdr(r.Rev), WatchId: int64(i + 1), Events: evs})
			}
		})
	}
	if e.hub.Rev() != end {
		t.Fatalf("hub at %d, store at %d", e.hub.Rev(), end)
	}
}

func tryNext(s *Stream, d time.Duration) (Out, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	out, err := s.Next(ctx)
	return out, err == nil
}

// A watcher from the past replays from storage in batches (etcd's 1000
// revisions, here made smaller), with the current revision in the header,
// then continues live without a gap or a duplicate even while writes go on.
func TestCatchUpThenLive(t *testing.T) {
	cases := []struct {
		name      string
		batchRevs int
		prevKV    bool
	}{
		{"etcd batch", 0, false},
		{"small batches", 7, true},
		{"one revision per batch", 1, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newTestEnv(t, Config{BatchRevs: c.batchRevs})
			for i := range 50 {
				e.put(fmt.Sprintf("k%d", i%5), fmt.Sprint(i))
				if i%10 == 9 {
					e.txn(putOp("k1", "t"), delOp("k2"), putOp("other", "x"))
				}
			}
			cur := e.store.Rev()
			sp := spec{key: []byte("k"), end: []byte("l"), start: 3, prevKV: c.prevKV}
			s := e.hub.NewStream()
			defer s.Close()
			s.Watch(sp.request(0))
			wantResp(t, next(t, s, wait).Resp, &pb.WatchResponse{Header: hdr(cur), WatchId: 0, Created: true})
			// The first catch-up batch is as etcd's: header at the
			// revision the replay read up to.
			first := next(t, s, wait).Resp
			if first.Header.Revision != cur {
				t.Fatalf("catch-up header %d, want %d", first.Header.Revision, cur)
			}
			batch := c.batchRevs
			if batch == 0 {
				batch = DefaultBatchRevs
			}
			want := expected(e.revisions(), sp, 3)
			if n := min(batch, len(want)); first.Events[len(first.Events)-1].Kv.ModRevision != want[n-1].Rev {
				t.Fatalf("first batch ends at %d, want %d", first.Events[len(first.Events)-1].Kv.ModRevision, want[n-1].Rev)
			}
			// Writes continue while the rest is read.
			done := make(chan struct{})
			go func() {
				defer close(done)
				for i := range 200 {
					e.put(fmt.Sprintf("k%d", i%7), "live")
				}
			}()
			gotEvs := append([]*mvccpb.Event(nil), first.Events...)
			<-done
			last := e.store.Rev()
			for gotEvs[len(gotEvs)-1].Kv.ModRevision < last {
				r := next(t, s, wait).Resp
				checkAtomic(t, r, e.revisions(), sp)
				gotEvs = append(gotEvs, r.Events...)
			}
			wantEvs := eventsOf(expected(e.revisions(), sp, 3))
			if !c.prevKV {
				wantEvs = withoutPrev(wantEvs)
			}
			if err := sameEvents(gotEvs, wantEvs); err != nil {
				t.Fatal(err)
			}
			none(t, s, 50*time.Millisecond)
		})
	}
}

// checkAtomic: every revision in r comes with all of its matching events.
func checkAtomic(t testing.TB, r *pb.WatchResponse, hist []storage.Revision, sp spec) {
	t.Helper()
	counts := map[int64]int{}
	for _, ev := range r.Events {
		counts[ev.Kv.ModRevision]++
	}
	for _, h := range hist {
		if n, ok := counts[h.Rev]; ok {
			want := 0
			for _, ev := range h.Events {
				if sp.matches(ev) {
					want++
				}
			}
			if n != want {
				t.Fatalf("revision %d split: %d of its %d events in one response", h.Rev, n, want)
			}
		}
		if r.Header.Revision < h.Rev && counts[h.Rev] > 0 {
			t.Fatalf("header %d below event revision %d", r.Header.Revision, h.Rev)
		}
	}
}

// A consumer that stops reading costs at most QueueLen responses: the
// watcher drops its queue, falls behind, and replays from storage once
// read again, losing and repeating nothing.
func TestSlowConsumer(t *testing.T) {
	e := newTestEnv(t, Config{QueueLen: 4, BatchRevs: 16})
	s := e.hub.NewStream()
	defer s.Close()
	sp := spec{key: []byte("k"), end: []byte("l"), prevKV: true}
	s.Watch(sp.request(0))
	created := next(t, s, wait).Resp
	for i := range 300 {
		e.txn(putOp(fmt.Sprintf("k%d", i%3), fmt.Sprint(i)), putOp(fmt.Sprintf("k%d", i%3+3), "x"))
		if i%50 == 0 {
			e.del("k", "l")
		}
	}
	w := s.watchers[0]
	s.mu.Lock()
	qlen := len(w.queue)
	s.mu.Unlock()
	e.hub.mu.Lock()
	state := w.state
	e.hub.mu.Unlock()
	if qlen > 4 {
		t.Fatalf("queue holds %d responses, bound is 4", qlen)
	}
	if state != stateCatchUp {
		t.Fatalf("watcher state %d, want catch-up", state)
	}
	last := e.store.Rev()
	var got []*mvccpb.Event
	for len(got) == 0 || got[len(got)-1].Kv.ModRevision < last {
		r := next(t, s, wait).Resp
		checkAtomic(t, r, e.revisions(), sp)
		got = append(got, r.Events...)
	}
	if err := sameEvents(got, eventsOf(expected(e.revisions(), sp, created.Header.Revision+1))); err != nil {
		t.Fatal(err)
	}
	// It rejoined live delivery.
	e.put("k0", "after")
	r := next(t, s, wait).Resp
	if len(r.Events) != 1 || string(r.Events[0].Kv.Value) != "after" || r.Header.Revision != e.store.Rev() {
		t.Fatalf("live event after catch-up: %s", show(r))
	}
	e.hub.mu.Lock()
	state = w.state
	e.hub.mu.Unlock()
	if state != stateLive {
		t.Fatalf("watcher state %d, want live", state)
	}
}

// Compaction: a watcher starting below the compaction point, or one that
// fell behind past it, gets etcd's compacted response (header revision 0)
// after what it could be sent, and then nothing; it stays known to Cancel
// and to the duplicate-ID check.
func TestCompaction(t *testing.T) {
	e := newTestEnv(t, Config{QueueLen: 2})
	for i := range 10 {
		e.put("a", fmt.Sprint(i))
	}
	e.compact(6)
	cur := e.store.Rev()
	s := e.hub.NewStream()
	defer s.Close()

	t.Run("start below the compaction point", func(t *testing.T) {
		s.Watch(&pb.WatchCreateRequest{Key: []byte("a"), StartRevision: 5, WatchId: 1})
		wantResp(t, next(t, s, wait).Resp, &pb.WatchResponse{Header: hdr(cur), WatchId: 1, Created: true})
		wantResp(t, next(t, s, wait).Resp, &pb.WatchResponse{Header: hdr(0), WatchId: 1, Canceled: true, CompactRevision: 6})
	})
	t.Run("start at the compaction point", func(t *testing.T) {
		s.Watch(&pb.WatchCreateRequest{Key: []byte("a"), StartRevision: 6, WatchId: 2})
		wantResp(t, next(t, s, wait).Resp, &pb.WatchResponse{Header: hdr(cur), WatchId: 2, Created: true})
		r := next(t, s, wait).Resp
		if len(r.Events) != int(cur-6+1) || r.Events[0].Kv.ModRevision != 6 {
			t.Fatalf("replay from the compaction point: %s", show(r))
		}
	})
	t.Run("compacted watcher is still registered", func(t *testing.T) {
		s.Watch(&pb.WatchCreateRequest{Key: []byte("a"), WatchId: 1})
		wantResp(t, next(t, s, wait).Resp, &pb.WatchResponse{Header: hdr(cur), WatchId: InvalidWatchID, Created: true, Canceled: true,
			CancelReason: ErrWatcherDuplicateID.Error()})
		s.Cancel(1)
		wantResp(t, next(t, s, wait).Resp, &pb.WatchResponse{Header: hdr(cur), WatchId: 1, Canceled: true})
		s.Cancel(1)
		none(t, s, 50*time.Millisecond)
	})
	t.Run("fallen behind past a compaction", func(t *testing.T) {
		s2 := e.hub.NewStream()
		defer s2.Close()
		s2.Watch(&pb.WatchCreateRequest{Key: []byte("b"), WatchId: 3})
		next(t, s2, wait)
		first := e.put("b", "0")
		for i := range 10 {
			e.put("b", fmt.Sprint(i+1))
		}
		e.compact(e.store.Rev() - 2)
		// The queue was dropped on overflow; the replay may have sent a
		// batch before the compaction, then the watcher's next revision
		// is compacted.
		var got []*mvccpb.Event
		var r *pb.WatchResponse
		for r = next(t, s2, wait).Resp; len(r.Events) > 0; r = next(t, s2, wait).Resp {
			got = append(got, r.Events...)
		}
		wantResp(t, r, &pb.WatchResponse{Header: hdr(0), WatchId: 3, Canceled: true, CompactRevision: e.store.CompactRev()})
		if err := sameEvents(got, withoutPrev(eventsOf(expected(e.revisions(), spec{key: []byte("b")}, first)))[:len(got)]); err != nil {
			t.Fatal(err)
		}
		if first+int64(len(got)) >= e.store.CompactRev() {
			t.Fatalf("compacted after %d events from %d, compaction at %d: it had nothing left to miss", len(got), first, e.store.CompactRev())
		}
		e.put("b", "later")
		none(t, s2, 50*time.Millisecond)
	})
}

// Cancel answers for known watchers only, and drops their pending events.
func TestCancel(t *testing.T) {
	e := newTestEnv(t, Config{})
	s := e.hub.NewStream()
	defer s.Close()
	s.Watch(&pb.WatchCreateRequest{Key: []byte("a")})
	next(t, s, wait)
	e.put("a", "1")
	e.put("a", "2")
	s.Cancel(0)
	s.Cancel(42)
	r := next(t, s, wait).Resp
	wantResp(t, r, &pb.WatchResponse{Header: hdr(e.store.Rev()), WatchId: 0, Canceled: true})
	e.put("a", "3")
	none(t, s, 50*time.Millisecond)
	// The ID is free again, and auto IDs go on from where they were.
	s.Watch(&pb.WatchCreateRequest{Key: []byte("a"), WatchId: 0})
	wantResp(t, next(t, s, wait).Resp, &pb.WatchResponse{Header: hdr(e.store.Rev()), WatchId: 1, Created: true})
	s.Watch(&pb.WatchCreateRequest{Key: []byte("a"), WatchId: 0})
	wantResp(t, next(t, s, wait).Resp, &pb.WatchResponse{Header: hdr(e.store.Rev()), WatchId: 2, Created: true})
}

// RequestProgress follows etcd's progressAll: an answer (watch ID -1, the
// current revision) only when every watcher is synced and past its start,
// never on an empty stream, and always after the events it covers.
func TestRequestProgress(t *testing.T) {
	e := newTestEnv(t, Config{})
	rev := e.put("a", "1")
	progress := func(rev int64) *pb.WatchResponse {
		return &pb.WatchResponse{Header: hdr(rev), WatchId: InvalidWatchID}
	}
	t.Run("empty stream", func(t *testing.T) {
		s := e.hub.NewStream()
		defer s.Close()
		s.RequestProgress()
		none(t, s, 50*time.Millisecond)
	})
	t.Run("synced watchers", func(t *testing.T) {
		s := e.hub.NewStream()
		defer s.Close()
		s.Watch(&pb.WatchCreateRequest{Key: []byte("a")})
		s.Watch(&pb.WatchCreateRequest{Key: []byte("b"), StartRevision: rev})
		next(t, s, wait)
		next(t, s, wait)
		waitState(t, e.hub, s, 1, stateLive)
		s.RequestProgress()
		wantResp(t, next(t, s, wait).Resp, progress(rev))
	})
	// etcd's progressIfSync also wants the current revision at or past
	// every watcher's start: a watcher at the next revision holds it back.
	for _, d := range []int64{1, 2} {
		t.Run(fmt.Sprintf("watcher starting at current+%d", d), func(t *testing.T) {
			s := e.hub.NewStream()
			defer s.Close()
			s.Watch(&pb.WatchCreateRequest{Key: []byte("a")})
			s.Watch(&pb.WatchCreateRequest{Key: []byte("b"), StartRevision: rev + d})
			next(t, s, wait)
			next(t, s, wait)
			s.RequestProgress()
			none(t, s, 50*time.Millisecond)
		})
	}
	t.Run("compacted watcher", func(t *testing.T) {
		e := newTestEnv(t, Config{})
		e.put("a", "1")
		e.put("a", "2")
		e.compact(3)
		s := e.hub.NewStream()
		defer s.Close()
		s.Watch(&pb.WatchCreateRequest{Key: []byte("a"), StartRevision: 1})
		next(t, s, wait)
		next(t, s, wait) // compacted
		s.RequestProgress()
		none(t, s, 50*time.Millisecond)
	})
	t.Run("barrier", func(t *testing.T) {
		s := e.hub.NewStream()
		defer s.Close()
		s.Watch(&pb.WatchCreateRequest{Key: []byte("x")})
		s.Watch(&pb.WatchCreateRequest{Key: []byte("y")})
		next(t, s, wait)
		next(t, s, wait)
		for i := range 5 {
			e.put("x", fmt.Sprint(i))
			e.put("y", fmt.Sprint(i))
		}
		at := e.store.Rev()
		s.RequestProgress()
		for i := range 3 {
			e.put("x", fmt.Sprint(i))
			e.put("y", fmt.Sprint(i))
		}
		seen, after := 0, 0
		for {
			out, ok := tryNext(s, 200*time.Millisecond)
			if !ok {
				break
			}
			r := out.Resp
			if r.WatchId == InvalidWatchID {
				wantResp(t, r, progress(at))
				if seen != 10 {
					t.Fatalf("progress at %d after %d of its 10 events", at, seen)
				}
				after++
				continue
			}
			if r.Header.Revision <= at {
				if after > 0 {
					t.Fatalf("event at %d after the progress response at %d", r.Header.Revision, at)
				}
				seen++
			} else if after == 0 {
				t.Fatalf("event at %d before the progress response at %d", r.Header.Revision, at)
			}
		}
		if after != 1 {
			t.Fatalf("%d progress responses, want 1", after)
		}
	})
}

// progress_notify: every interval, a synced watcher that had no events
// since the last tick gets an empty response with the current revision.
func TestProgressNotify(t *testing.T) {
	e := newTestEnv(t, Config{ProgressInterval: 100 * time.Millisecond})
	rev := e.put("a", "1")
	s := e.hub.NewStream()
	defer s.Close()
	s.Watch(&pb.WatchCreateRequest{Key: []byte("a"), ProgressNotify: true, WatchId: 1})
	s.Watch(&pb.WatchCreateRequest{Key: []byte("b"), WatchId: 2})
	s.Watch(&pb.WatchCreateRequest{Key: []byte("c"), ProgressNotify: true, StartRevision: rev + 100, WatchId: 3})
	for range 3 {
		next(t, s, wait)
	}
	wantResp(t, next(t, s, time.Second).Resp, &pb.WatchResponse{Header: hdr(rev), WatchId: 1})
	// An event resets it: the next tick is skipped.
	rev = e.put("a", "2")
	r := next(t, s, time.Second).Resp
	if len(r.Events) != 1 {
		t.Fatalf("want the event: %s", show(r))
	}
	start := time.Now()
	wantResp(t, next(t, s, time.Second).Resp, &pb.WatchResponse{Header: hdr(rev), WatchId: 1})
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Fatalf("progress %v after an event; the tick after an event is skipped", d)
	}
}

// Closing the hub ends streams and catch-ups.
func TestHubClose(t *testing.T) {
	e := newTestEnv(t, Config{})
	for i := range 100 {
		e.put("a", fmt.Sprint(i))
	}
	s := e.hub.NewStream()
	s.Watch(&pb.WatchCreateRequest{Key: []byte("a"), StartRevision: 1})
	next(t, s, wait)
	e.hub.Close()
	if _, err := s.Next(t.Context()); err != ErrClosed {
		t.Fatalf("Next after Close: %v", err)
	}
	select {
	case <-s.Done():
	default:
		t.Fatal("stream not done")
	}
	if s2 := e.hub.NewStream(); !isClosed(s2) {
		t.Fatal("new stream on a closed hub is open")
	}
	e.put("a", "after close") // Notify still works
}

func isClosed(s *Stream) bool {
	select {
	case <-s.Done():
		return true
	default:
		return false
	}
}

// waitState waits until watcher id of s is in state st.
func waitState(t testing.TB, h *Hub, s *Stream, id int64, st watcherState) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		h.mu.Lock()
		w := s.watchers[id]
		ok := w != nil && w.state == st
		h.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("watcher %d never reached state %d", id, st)
		}
		time.Sleep(time.Millisecond)
	}
}

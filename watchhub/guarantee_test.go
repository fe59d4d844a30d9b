package watchhub

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gogoproto "github.com/gogo/protobuf/proto"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/sett-dev/sett/storage"
)

// TestGuaranteesRandomized checks etcd's watch guarantees under load:
// writers (puts, deletes, range deletes, multi-key Txns), a compactor,
// and streams of watchers with random ranges, filters, prev_kv and start
// revisions (past, compacted, now, future), some read slowly or stalled so
// that their queues overflow, some canceled and resumed from their last
// revision + 1, with progress requests and progress_notify ticks. Each
// watcher's stream must equal the history filtered by its range and
// filters: ordered, unique, without gaps, each revision whole in one
// response; a progress response at R must follow all of its events up to
// R; a compacted response only when the watcher needed a compacted
// revision. WATCHHUB_SEED reproduces a run.
func TestGuaranteesRandomized(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("WATCHHUB_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (WATCHHUB_SEED=%d reproduces the choices, not the timing)", seed, seed)
	maxRevs := int64(6000)
	if raceEnabled {
		maxRevs = 2000
	}
	const (
		numKeys    = 24
		writers    = 4
		numStreams = 6
		window     = 300 // revisions kept by the compactor
	)
	e := newTestEnv(t, Config{QueueLen: 8, BatchRevs: 25, BatchBytes: 16 << 10, ProgressInterval: 100 * time.Millisecond})
	key := func(i int) []byte { return []byte(fmt.Sprintf("k%02d", i)) }

	var stop atomic.Bool
	var wg sync.WaitGroup
	fail := func(format string, args ...any) { t.Errorf(format, args...); stop.Store(true) }
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(w)))
			for !stop.Load() && e.store.Rev() < maxRevs {
				var req pb.InternalRaftRequest
				k := r.IntN(numKeys)
				switch n := r.IntN(100); {
				case n < 50:
					req.Put = &pb.PutRequest{Key: key(k), Value: make([]byte, r.IntN(200))}
				case n < 65:
					req.DeleteRange = &pb.DeleteRangeRequest{Key: key(k)}
				case n < 75:
					req.DeleteRange = &pb.DeleteRangeRequest{Key: key(k), RangeEnd: key(k + 1 + r.IntN(6))}
				default:
					var ops []*pb.RequestOp
					for _, j := range r.Perm(numKeys)[:2+r.IntN(3)] {
						if r.IntN(3) == 0 {
							ops = append(ops, delOp(string(key(j))))
						} else {
							ops = append(ops, putOp(string(key(j)), strconv.Itoa(r.IntN(1000))))
						}
					}
					req.Txn = &pb.TxnRequest{Success: ops}
				}
				res, err := e.local.Propose(context.Background(), &req)
				if err == nil {
					err = res.Err
				}
				if err != nil {
					fail("write: %v", err)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // compactor
		defer wg.Done()
		for !stop.Load() && e.store.Rev() < maxRevs {
			time.Sleep(20 * time.Millisecond)
			c := e.store.Rev() - window
			if c > e.store.CompactRev() {
				res, err := e.local.Propose(context.Background(), &pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: c}})
				if err == nil && res.Err != nil && res.Err != storage.ErrCompacted {
					err = res.Err
				}
				if err != nil {
					fail("compact: %v", err)
					return
				}
			}
		}
	}()

	streams := make([]*gStream, numStreams)
	var cwg sync.WaitGroup
	for i := range streams {
		gs := &gStream{e: e, s: e.hub.NewStream(), r: rand.New(rand.NewPCG(seed, 100+uint64(i))), resume: make(chan *gWatcher, 1024)}
		gs.slow = i%3 == 0
		gs.stall = i%3 == 1
		streams[i] = gs
		cwg.Add(2)
		go func() { defer cwg.Done(); gs.consume() }()
		go func() {
			defer cwg.Done()
			for range 3 + gs.r.IntN(4) {
				gs.create(gs.randomSpec(numKeys, key), nil)
			}
			for !stop.Load() && e.store.Rev() < maxRevs {
				time.Sleep(time.Duration(2+gs.r.IntN(15)) * time.Millisecond)
				gs.act(numKeys, key)
			}
		}()
	}
	deadline := time.Now().Add(20 * time.Second)
	for !stop.Load() && e.store.Rev() < maxRevs && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	// Controllers finish; resumes still come in until the streams settle.
	for _, gs := range streams {
		gs.mu.Lock()
		gs.settling = true
		gs.mu.Unlock()
	}
	final := e.store.Rev()
	hist := e.revisions()
	t.Logf("%d revisions, compacted at %d", final, e.store.CompactRev())

	// Every active watcher catches up with the end of the history.
	for _, gs := range streams {
		gs.drainResumes()
	}
	settle := time.Now().Add(10 * time.Second)
	for _, gs := range streams {
		for !gs.caughtUp(hist, final) {
			if time.Now().After(settle) {
				gs.mu.Lock()
				for _, w := range gs.all {
					if w.active() {
						t.Errorf("stream %p watcher %d (%s): not caught up: last %d of %d", gs, w.id, w.sp, w.last, final)
					}
				}
				gs.mu.Unlock()
				break
			}
			gs.drainResumes()
			time.Sleep(5 * time.Millisecond)
		}
	}
	// Now a progress request is answered at the final revision, unless a
	// watcher is compacted or in the future.
	for _, gs := range streams {
		gs.s.RequestProgress()
	}
	time.Sleep(300 * time.Millisecond)
	for _, gs := range streams {
		gs.s.Close()
	}
	cwg.Wait()

	var stats struct{ watchers, events, resps, progress, compacted, resumed int }
	for _, gs := range streams {
		gs.mu.Lock()
		for _, w := range gs.all {
			stats.watchers++
			if w.prev != nil {
				stats.resumed++
			}
			for _, l := range w.log {
				switch {
				case l.compact != 0:
					stats.compacted++
				case l.progress:
					stats.progress++
				default:
					stats.resps++
					stats.events += len(l.resp.Events)
				}
			}
			if err := w.verify(hist, final); err != nil {
				t.Errorf("watcher %d %s from %d: %v\n%s", w.id, w.sp, w.from, err, w.dump())
			}
		}
		gs.mu.Unlock()
	}
	fellBehind := e.hub.fellBehind.Load()
	t.Logf("%d watchers (%d resumed), %d responses with %d events, %d progress, %d compacted; %d queue overflows",
		stats.watchers, stats.resumed, stats.resps, stats.events, stats.progress, stats.compacted, fellBehind)
	if stats.events == 0 || stats.progress == 0 || stats.compacted == 0 || stats.resumed == 0 || fellBehind == 0 {
		t.Errorf("the run exercised too little: %+v", stats)
	}
}

// gStream drives one Stream: a controller creating, canceling, resuming
// watchers and requesting progress, and a consumer recording responses.
type gStream struct {
	e           *testEnv
	s           *Stream
	r           *rand.Rand // controller's
	slow, stall bool
	resume      chan *gWatcher

	mu       sync.Mutex
	pending  []*gWatcher // created, awaiting their created response
	byID     map[int64]*gWatcher
	all      []*gWatcher
	settling bool
}

type gWatcher struct {
	sp      spec
	id      int64
	from    int64 // first revision it must deliver
	prev    *gWatcher
	resumeR bool // canceled to be resumed
	log     []gEntry
	last    int64 // last event revision received
	done    bool  // canceled or compacted
	compact bool
}

type gEntry struct {
	resp     *pb.WatchResponse
	progress bool
	compact  int64
	// compactAt is the compaction point when the entry was received.
	compactAt int64
	hubRev    int64
}

func (w *gWatcher) active() bool { return !w.done }

func (sp spec) String() string {
	return fmt.Sprintf("[%q,%q) noput=%v nodel=%v prev=%v start=%d", sp.key, sp.end, sp.noPut, sp.noDelete, sp.prevKV, sp.start)
}

func (gs *gStream) randomSpec(numKeys int, key func(int) []byte) spec {
	r := gs.r
	var sp spec
	k := r.IntN(numKeys)
	switch r.IntN(4) {
	case 0:
		sp.key = key(k)
	case 1:
		sp.key, sp.end = key(k), key(k+1+r.IntN(8))
	case 2:
		sp.key, sp.end = []byte("k1"), []byte("k2") // a prefix
	default:
		sp.key, sp.end = key(k), []byte{0}
	}
	sp.noPut = r.IntN(6) == 0
	sp.noDelete = !sp.noPut && r.IntN(5) == 0
	sp.prevKV = r.IntN(2) == 0
	sp.notify = r.IntN(3) == 0
	sp.fragment = r.IntN(4) == 0
	cur := gs.e.store.Rev()
	switch r.IntN(5) {
	case 0:
		sp.start = 0
	case 1:
		sp.start = cur + 1 + int64(r.IntN(50)) // future
	case 2:
		sp.start = 1 + r.Int64N(cur) // past, likely compacted
	default:
		sp.start = max(1, cur-r.Int64N(400)) // recent past, maybe compacted
	}
	return sp
}

// create asks for a watcher; the consumer learns its ID from the created
// response, which comes in request order.
func (gs *gStream) create(sp spec, prev *gWatcher) {
	w := &gWatcher{sp: sp, prev: prev}
	gs.mu.Lock()
	gs.pending = append(gs.pending, w)
	gs.mu.Unlock()
	gs.s.Watch(sp.request(AutoWatchID))
}

func (gs *gStream) act(numKeys int, key func(int) []byte) {
	gs.drainResumes()
	switch n := gs.r.IntN(10); {
	case n < 3:
		gs.create(gs.randomSpec(numKeys, key), nil)
	case n < 6:
		gs.mu.Lock()
		var cands []*gWatcher
		for _, w := range gs.byID {
			if !w.resumeR {
				cands = append(cands, w)
			}
		}
		var w *gWatcher
		if len(cands) > 0 {
			w = cands[gs.r.IntN(len(cands))]
			w.resumeR = !w.done // a compacted one is just removed
		}
		gs.mu.Unlock()
		if w != nil {
			gs.s.Cancel(w.id)
		}
	default:
		gs.s.RequestProgress()
	}
}

func (gs *gStream) drainResumes() {
	for {
		select {
		case w := <-gs.resume:
			sp := w.sp
			sp.start = w.from
			if w.last != 0 {
				sp.start = w.last + 1
			}
			gs.create(sp, w)
		default:
			return
		}
	}
}

func (gs *gStream) consume() {
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for {
		out, err := gs.s.Next(context.Background())
		if err != nil {
			return
		}
		resp := out.Resp
		if gs.slow {
			time.Sleep(time.Duration(r.IntN(1500)) * time.Microsecond)
		}
		if gs.stall && r.IntN(200) == 0 {
			time.Sleep(150 * time.Millisecond)
		}
		ent := gEntry{resp: resp, compactAt: gs.e.store.CompactRev(), hubRev: gs.e.hub.Rev()}
		gs.mu.Lock()
		switch {
		case resp.Created:
			w := gs.pending[0]
			gs.pending = gs.pending[1:]
			if resp.Canceled {
				panic(fmt.Sprintf("create refused: %s", show(resp)))
			}
			w.id = resp.WatchId
			w.from = w.sp.start
			if w.from == 0 {
				w.from = resp.Header.Revision + 1
			}
			if gs.byID == nil {
				gs.byID = map[int64]*gWatcher{}
			}
			gs.byID[w.id] = w
			gs.all = append(gs.all, w)
		case resp.WatchId == InvalidWatchID:
			ent.progress = true
			for _, w := range gs.byID {
				if w.compact {
					w.log = append(w.log, gEntry{resp: &pb.WatchResponse{Header: resp.Header, CancelReason: "progress -1 while compacted"}})
				}
				w.log = append(w.log, ent)
			}
		case resp.Canceled && resp.CompactRevision == 0:
			w := gs.byID[resp.WatchId]
			delete(gs.byID, resp.WatchId)
			if w.resumeR && !w.compact {
				gs.resume <- w
			}
			w.done = true
		default:
			w := gs.byID[resp.WatchId]
			if w == nil {
				panic(fmt.Sprintf("response for unknown watcher: %s", show(resp)))
			}
			if resp.CompactRevision != 0 {
				ent.compact = resp.CompactRevision
				w.compact, w.done = true, true
			} else if len(resp.Events) == 0 {
				ent.progress = true
			} else {
				w.last = resp.Events[len(resp.Events)-1].Kv.ModRevision
			}
			w.log = append(w.log, ent)
		}
		gs.mu.Unlock()
	}
}

// caughtUp: every active watcher received its last event up to final.
func (gs *gStream) caughtUp(hist []storage.Revision, final int64) bool {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	if len(gs.pending) > 0 || len(gs.resume) > 0 {
		return false
	}
	for _, w := range gs.byID {
		if w.done {
			continue
		}
		want := expected(hist, w.sp, w.from)
		if len(want) > 0 && w.last < want[len(want)-1].Rev {
			return false
		}
	}
	return true
}

// verify replays a watcher's log against the history.
func (w *gWatcher) verify(hist []storage.Revision, final int64) error {
	want := expected(hist, w.sp, w.from)
	i := 0 // next wanted revision
	for n, l := range w.log {
		if l.resp.CancelReason != "" {
			return fmt.Errorf("entry %d: %s", n, l.resp.CancelReason)
		}
		switch {
		case l.compact != 0:
			if n != len(w.log)-1 {
				return fmt.Errorf("entry %d: responses after the compacted response", n)
			}
			if l.compact > l.compactAt || w.last >= l.compact {
				return fmt.Errorf("compacted at %d (store compacted at %d when received), last event %d", l.compact, l.compactAt, w.last)
			}
		case l.progress:
			if i < len(want) && want[i].Rev <= l.resp.Header.Revision {
				return fmt.Errorf("entry %d: progress at %d before the event at %d", n, l.resp.Header.Revision, want[i].Rev)
			}
			if l.resp.Header.Revision > l.hubRev {
				return fmt.Errorf("entry %d: progress at %d beyond the notified revision %d", n, l.resp.Header.Revision, l.hubRev)
			}
		default:
			r := l.resp
			if r.WatchId != w.id || r.Created || r.Canceled || r.Fragment {
				return fmt.Errorf("entry %d: bad response %s", n, show(r))
			}
			evs := r.Events
			for len(evs) > 0 {
				if i >= len(want) {
					return fmt.Errorf("entry %d: event beyond the history: %s", n, show(evs[0]))
				}
				wr := want[i]
				if len(evs) < len(wr.Events) {
					return fmt.Errorf("entry %d: revision %d split or short: %d of %d events", n, wr.Rev, len(evs), len(wr.Events))
				}
				for j, we := range wr.Events {
					if err := w.sameEvent(evs[j], we, l.compactAt); err != nil {
						return fmt.Errorf("entry %d, revision %d, event %d: %v", n, wr.Rev, j, err)
					}
				}
				if r.Header.Revision < wr.Rev || r.Header.Revision > l.hubRev {
					return fmt.Errorf("entry %d: header %d, event at %d, notified %d", n, r.Header.Revision, wr.Rev, l.hubRev)
				}
				evs = evs[len(wr.Events):]
				i++
			}
		}
	}
	if !w.done && len(want) > 0 && i < len(want) {
		return fmt.Errorf("missing events from revision %d (final %d)", want[i].Rev, final)
	}
	return nil
}

func (w *gWatcher) sameEvent(got, want *mvccpb.Event, compactAt int64) error {
	if got.Type != want.Type || !gogoproto.Equal(got.Kv, want.Kv) {
		return fmt.Errorf("got %s, want %s", show(got), show(want))
	}
	switch {
	case !w.sp.prevKV:
		if got.PrevKv != nil {
			return fmt.Errorf("prev_kv without asking: %s", show(got))
		}
	case got.PrevKv == nil && want.PrevKv != nil:
		// Replay omits it once its revision is compacted, as etcd.
		if want.Kv.ModRevision-1 >= compactAt {
			return fmt.Errorf("prev_kv missing: got %s, want %s", show(got), show(want))
		}
	case !gogoproto.Equal(got.PrevKv, want.PrevKv):
		return fmt.Errorf("prev_kv: got %s, want %s", show(got), show(want))
	}
	return nil
}

// dump summarizes a watcher's log for a failure report.
func (w *gWatcher) dump() string {
	var b strings.Builder
	for p := w.prev; p != nil; p = p.prev {
		fmt.Fprintf(&b, "  resumed from watcher %d (from %d, last %d)\n", p.id, p.from, p.last)
	}
	for n, l := range w.log {
		switch {
		case l.compact != 0:
			fmt.Fprintf(&b, "  %d: compacted %d\n", n, l.compact)
		case l.progress:
			fmt.Fprintf(&b, "  %d: progress %d (id %d)\n", n, l.resp.Header.Revision, l.resp.WatchId)
		default:
			var revs []int64
			for _, ev := range l.resp.Events {
				if len(revs) == 0 || revs[len(revs)-1] != ev.Kv.ModRevision {
					revs = append(revs, ev.Kv.ModRevision)
				}
			}
			fmt.Fprintf(&b, "  %d: header %d, %d events at %v (hub %d, compact %d)\n", n, l.resp.Header.Revision, len(l.resp.Events), revs, l.hubRev, l.compactAt)
		}
	}
	return b.String()
}

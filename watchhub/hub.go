package watchhub

import (
	"bytes"
	"context"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/sett-dev/sett/storage"
)

// Store is what the hub reads: the revision tree for catch-up, and the
// current and compaction revisions. *storage.Store implements it.
type Store interface {
	Rev() int64
	CompactRev() int64
	Events(ctx context.Context, from, to int64, withPrev bool, fn func(storage.Revision) bool) error
}

// Config tunes the hub. Zero values take the defaults.
type Config struct {
	// ProgressInterval is etcd's --watch-progress-notify-interval: how often
	// a watcher created with progress_notify gets an empty response with the
	// current revision. Default 10 minutes; less than 100 ms becomes 100 ms,
	// as in etcd. Each stream adds up to a tenth of it as jitter.
	ProgressInterval time.Duration
	// QueueLen bounds the responses waiting in one live watcher's queue;
	// QueueBytes bounds their approximate size. A watcher over either bound
	// drops its queue and replays from storage.
	QueueLen   int
	QueueBytes int
	// BatchRevs is the most revisions one catch-up response carries (etcd's
	// watchBatchMaxRevs); BatchBytes also ends a batch once it holds this
	// much (never splitting a revision).
	BatchRevs  int
	BatchBytes int
	// Replays bounds the catch-up scans of storage running at once.
	Replays int
	Logger  *slog.Logger
}

// Defaults.
const (
	DefaultProgressInterval = 10 * time.Minute
	MinProgressInterval     = 100 * time.Millisecond
	DefaultQueueLen         = 128
	DefaultQueueBytes       = 8 << 20
	DefaultBatchRevs        = 1000
	DefaultBatchBytes       = 4 << 20
)

func (c *Config) setDefaults() {
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = DefaultProgressInterval
	}
	if c.ProgressInterval < MinProgressInterval {
		c.ProgressInterval = MinProgressInterval
	}
	if c.QueueLen <= 0 {
		c.QueueLen = DefaultQueueLen
	}
	if c.QueueBytes <= 0 {
		c.QueueBytes = DefaultQueueBytes
	}
	if c.BatchRevs <= 0 {
		c.BatchRevs = DefaultBatchRevs
	}
	if c.BatchBytes <= 0 {
		c.BatchBytes = DefaultBatchBytes
	}
	if c.Replays <= 0 {
		c.Replays = 2 * runtime.GOMAXPROCS(0)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Hub fans committed revisions out to watchers.
type Hub struct {
	store Store
	cfg   Config
	log   *slog.Logger

	// scans bounds concurrent catch-up reads of storage.
	scans chan struct{}
	// wg tracks catch-up goroutines, which read storage: Close waits for
	// them so that storage can be closed after it.
	wg sync.WaitGroup

	mu sync.Mutex // guards everything below, and watchers' hub-side state
	// rev is the newest revision handed to Notify: every live watcher has
	// had every revision up to rev queued (or skipped as not its own).
	rev     int64
	closed  bool
	streams map[*Stream]struct{}
	idx     index
	// touched and its watchers' scratch lists are Notify's working space.
	touched []*watcher

	// fellBehind counts queue overflows.
	fellBehind atomic.Int64
}

// New makes a hub over store. It must see every revision committed after
// it is made: create it before the applier starts, and pass Notify to it.
func New(store Store, cfg Config) *Hub {
	cfg.setDefaults()
	return &Hub{
		store:   store,
		cfg:     cfg,
		log:     cfg.Logger,
		scans:   make(chan struct{}, cfg.Replays),
		rev:     store.Rev(),
		streams: map[*Stream]struct{}{},
		idx:     newIndex(),
	}
}

// Rev is the newest revision every live watcher has been given.
func (h *Hub) Rev() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rev
}

// Config is the hub's configuration, with defaults applied.
func (h *Hub) Config() Config { return h.cfg }

// Close ends every stream (their Next returns ErrClosed) and waits for
// catch-up reads of storage to stop. Notify may still be called after it.
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	streams := make([]*Stream, 0, len(h.streams))
	for s := range h.streams {
		streams = append(streams, s)
	}
	h.mu.Unlock()
	for _, s := range streams {
		s.Close()
	}
	h.wg.Wait()
}

// Notify hands committed revisions, in order, to the live watchers. It is
// the replication.ApplyObserver: it runs on the applier and never blocks
// on a watcher.
func (h *Hub) Notify(revs []storage.Revision) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range revs {
		r := &revs[i]
		if r.Rev <= h.rev {
			continue // already seen (cannot happen with one applier)
		}
		h.rev = r.Rev
		if h.idx.size == 0 {
			continue
		}
		h.touched = h.touched[:0]
		for j, ev := range r.Events {
			h.idx.match(ev.Kv.Key, func(w *watcher) {
				if r.Rev < w.nextRev {
					return // a future start, or already replayed
				}
				if w.scratchRev != r.Rev {
					w.scratchRev = r.Rev
					w.scratch = w.scratch[:0]
					h.touched = append(h.touched, w)
				}
				w.scratch = append(w.scratch, int32(j))
			})
		}
		if len(h.touched) == 0 {
			continue
		}
		var stripped []*mvccpb.Event
		for _, w := range h.touched {
			evs := make([]*mvccpb.Event, 0, len(w.scratch))
			size := 0
			for _, j := range w.scratch {
				ev := r.Events[j]
				if w.filtered(ev) {
					continue
				}
				if !w.prevKV && ev.PrevKv != nil {
					if stripped == nil {
						stripped = make([]*mvccpb.Event, len(r.Events))
					}
					if stripped[j] == nil {
						c := *ev
						c.PrevKv = nil
						stripped[j] = &c
					}
					ev = stripped[j]
				}
				evs = append(evs, ev)
				size += eventSize(ev)
			}
			if len(evs) == 0 {
				continue // all filtered out: etcd sends nothing
			}
			resp := &pb.WatchResponse{Header: &pb.ResponseHeader{Revision: r.Rev}, WatchId: w.id, Events: evs}
			if !w.stream.pushLive(w, item{kind: kindEvents, resp: resp, size: size, firstRev: r.Rev}, h.cfg) {
				h.fallBehind(w, r.Rev)
			}
		}
	}
}

// fallBehind moves a live watcher whose queue overflowed to catch-up.
// pushLive has dropped the queue and left in w.dropFrom the first revision
// the watcher has not been sent, if the queue held events. h.mu is held.
func (h *Hub) fallBehind(w *watcher, rev int64) {
	next := rev
	if w.dropFrom != 0 && w.dropFrom < next {
		next = w.dropFrom
	}
	w.dropFrom = 0
	h.fellBehind.Add(1)
	h.idx.remove(w)
	w.state = stateCatchUp
	w.nextRev = next
	h.startCatchUp(w)
}

// register adds a new watcher of s. h.mu is held.
func (h *Hub) register(w *watcher) {
	if w.startRev == 0 || w.startRev > h.rev {
		w.state = stateLive
		w.nextRev = max(h.rev+1, w.startRev)
		h.idx.add(w)
		return
	}
	w.state = stateCatchUp
	w.nextRev = w.startRev
	h.startCatchUp(w)
}

// unregister takes w out of the hub for good. h.mu is held.
func (h *Hub) unregister(w *watcher) {
	if w.state == stateLive {
		h.idx.remove(w)
	}
	w.state = stateGone
}

func eventSize(ev *mvccpb.Event) int {
	n := 48
	if ev.Kv != nil {
		n += len(ev.Kv.Key) + len(ev.Kv.Value)
	}
	if ev.PrevKv != nil {
		n += 48 + len(ev.PrevKv.Key) + len(ev.PrevKv.Value)
	}
	return n
}

// index finds the live watchers of a key: single-key watchers by key,
// range watchers grouped by identical range (Kubernetes' many watchers of
// one resource prefix share one group).
type index struct {
	size   int
	keys   map[string]map[*watcher]struct{}
	ranges map[string]*rangeGroup
	groups []*rangeGroup
}

type rangeGroup struct {
	key, end []byte // end empty: every key from key on
	pos      int    // in index.groups
	watchers map[*watcher]struct{}
}

func newIndex() index {
	return index{keys: map[string]map[*watcher]struct{}{}, ranges: map[string]*rangeGroup{}}
}

func rangeID(key, end []byte) string {
	b := make([]byte, 0, len(key)+len(end)+9)
	b = append(b, byte(len(key)>>24), byte(len(key)>>16), byte(len(key)>>8), byte(len(key)))
	b = append(b, key...)
	return string(append(b, end...))
}

func (x *index) add(w *watcher) {
	x.size++
	if w.end == nil {
		set := x.keys[string(w.key)]
		if set == nil {
			set = map[*watcher]struct{}{}
			x.keys[string(w.key)] = set
		}
		set[w] = struct{}{}
		return
	}
	id := rangeID(w.key, w.end)
	g := x.ranges[id]
	if g == nil {
		g = &rangeGroup{key: w.key, end: w.end, pos: len(x.groups), watchers: map[*watcher]struct{}{}}
		x.ranges[id] = g
		x.groups = append(x.groups, g)
	}
	g.watchers[w] = struct{}{}
}

func (x *index) remove(w *watcher) {
	if w.end == nil {
		set := x.keys[string(w.key)]
		if _, ok := set[w]; !ok {
			return
		}
		x.size--
		delete(set, w)
		if len(set) == 0 {
			delete(x.keys, string(w.key))
		}
		return
	}
	id := rangeID(w.key, w.end)
	g := x.ranges[id]
	if g == nil {
		return
	}
	if _, ok := g.watchers[w]; !ok {
		return
	}
	x.size--
	delete(g.watchers, w)
	if len(g.watchers) == 0 {
		delete(x.ranges, id)
		last := x.groups[len(x.groups)-1]
		x.groups[g.pos] = last
		last.pos = g.pos
		x.groups[len(x.groups)-1] = nil
		x.groups = x.groups[:len(x.groups)-1]
	}
}

func (x *index) match(key []byte, fn func(*watcher)) {
	for w := range x.keys[string(key)] {
		fn(w)
	}
	for _, g := range x.groups {
		if inRange(key, g.key, g.end) {
			for w := range g.watchers {
				fn(w)
			}
		}
	}
}

// inRange: end nil is the single key, end empty every key from key on.
func inRange(k, key, end []byte) bool {
	if end == nil {
		return bytes.Equal(k, key)
	}
	if bytes.Compare(k, key) < 0 {
		return false
	}
	return len(end) == 0 || bytes.Compare(k, end) < 0
}

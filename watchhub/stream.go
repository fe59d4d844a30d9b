package watchhub

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// ErrClosed is returned by Next once the stream or the hub is closed.
var ErrClosed = errors.New("watchhub: stream closed")

// etcd's watch errors, sent as cancel reasons (mvcc/watcher.go).
var (
	ErrEmptyWatcherRange  = errors.New("mvcc: watcher range is empty")
	ErrWatcherDuplicateID = errors.New("mvcc: duplicate watch ID provided on the WatchStream")
)

// Watch IDs with a meaning of their own (clientv3.AutoWatchID and
// clientv3.InvalidWatchID).
const (
	AutoWatchID    int64 = 0
	InvalidWatchID int64 = -1
)

// ctrlSlots bounds the control responses waiting to be sent, as etcd's
// ctrlStreamBufLen; Watch and Cancel wait for a slot.
const ctrlSlots = 16

// maxProgressAll bounds the stream-wide progress responses waiting for
// their barrier; further requests are ignored (the client asks again).
const maxProgressAll = 16

type watcherState uint8

const (
	stateLive watcherState = iota
	stateCatchUp
	stateCompacted
	stateGone
)

type itemKind uint8

const (
	kindEvents itemKind = iota
	kindProgress
	kindCompacted
	kindMarker
)

// item is one entry of a watcher's queue.
type item struct {
	kind     itemKind
	resp     *pb.WatchResponse
	size     int
	firstRev int64        // kindEvents: revision of the first event
	all      *progressAll // kindMarker
}

// progressAll is a stream-wide progress response waiting until every
// watcher's queue reached its marker.
type progressAll struct {
	rev     int64
	pending int  // markers not reached yet
	void    bool // a watcher dropped its marker: do not send
}

// ctrlItem is a control response, or the place of a stream-wide progress
// response in the control order: it is sent when every marker is reached,
// and holds back the control responses queued after it.
type ctrlItem struct {
	resp *pb.WatchResponse
	w    *watcher     // the created watcher, announced when this is taken
	all  *progressAll // a progress response's place
}

// watcher is one watch of a stream.
type watcher struct {
	stream *Stream
	id     int64
	key    []byte
	end    []byte // nil: one key; empty: all keys >= key
	// startRev is the requested start revision (0: from now).
	startRev                     int64
	prevKV, fragment, progressOn bool
	noPut, noDelete              bool

	// Guarded by hub.mu.
	state   watcherState
	nextRev int64 // live: the first revision it accepts; catch-up: the next to replay
	// Notify's scratch: the events of revision scratchRev it matched.
	scratchRev int64
	scratch    []int32

	// Guarded by stream.mu.
	queue     []item
	qbytes    int
	announced bool // its created response has been taken
	inReady   bool
	paused    bool  // its queue's head is a reached progress marker
	dead      bool  // canceled or stream closed: queue nothing more
	dropFrom  int64 // set by pushLive when it drops a queue holding events
	// progressDue is etcd's progress[id]: no events were sent since the
	// last progress tick, so the next tick sends a progress response.
	progressDue bool
	// space is poked when the sender takes from the queue.
	space chan struct{}
}

func (w *watcher) filtered(ev *mvccpb.Event) bool {
	return (w.noPut && ev.Type == mvccpb.PUT) || (w.noDelete && ev.Type == mvccpb.DELETE)
}

// Out is one response for the stream's sender to send.
type Out struct {
	Resp *pb.WatchResponse
	// Fragment says the response belongs to a watcher that asked for
	// fragmentation: the sender splits it if too large, as etcd.
	Fragment bool
}

// Stream is a group of watchers sharing one ordered output, as one etcd
// gRPC Watch stream. Watch, Cancel and RequestProgress are called by the
// stream's receiver; Next by its (single) sender.
type Stream struct {
	hub *Hub

	ctx    context.Context // canceled by Close: stops catch-up reads
	cancel context.CancelFunc
	done   chan struct{}
	wake   chan struct{}
	slots  chan struct{} // free control slots
	ticker *time.Ticker

	mu       sync.Mutex
	closed   bool
	watchers map[int64]*watcher
	nextID   int64
	ctrl     []ctrlItem
	ready    []*watcher
	waiting  int // progress responses in ctrl
}

// NewStream opens a stream. On a closed hub the stream is closed.
func (h *Hub) NewStream() *Stream {
	ctx, cancel := context.WithCancel(context.Background())
	interval := h.cfg.ProgressInterval
	interval += time.Duration(rand.Int64N(int64(interval)/10 + 1))
	s := &Stream{
		hub:      h,
		ctx:      ctx,
		cancel:   cancel,
		done:     make(chan struct{}),
		wake:     make(chan struct{}, 1),
		slots:    make(chan struct{}, ctrlSlots),
		ticker:   time.NewTicker(interval),
		watchers: map[int64]*watcher{},
	}
	for range ctrlSlots {
		s.slots <- struct{}{}
	}
	h.mu.Lock()
	closed := h.closed
	if !closed {
		h.streams[s] = struct{}{}
	}
	h.mu.Unlock()
	if closed {
		s.Close()
	}
	return s
}

// Done is closed when the stream is closed (by Close or by the hub).
func (s *Stream) Done() <-chan struct{} { return s.done }

// Close cancels every watcher of the stream and ends Next.
func (s *Stream) Close() {
	h := s.hub
	h.mu.Lock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		h.mu.Unlock()
		return
	}
	s.closed = true
	for _, w := range s.watchers {
		h.unregister(w)
		w.dead = true
		w.queue = nil
	}
	s.ctrl, s.ready = nil, nil
	delete(h.streams, s)
	s.mu.Unlock()
	h.mu.Unlock()
	s.ticker.Stop()
	s.cancel()
	close(s.done)
}

// takeSlot waits for room for one control response.
func (s *Stream) takeSlot() bool {
	select {
	case <-s.slots:
		return true
	case <-s.done:
		return false
	}
}

// pushCtrl queues a control response. s.mu is held.
func (s *Stream) pushCtrl(c ctrlItem) {
	s.ctrl = append(s.ctrl, c)
	s.poke()
}

func (s *Stream) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Watch handles a create request as etcd's v3rpc and mvcc do: the created
// (or refused) response is queued for the sender, ahead of the watcher's
// events. It returns false if the stream is closed.
func (s *Stream) Watch(creq *pb.WatchCreateRequest) bool {
	if !s.takeSlot() {
		return false
	}
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	key := creq.Key
	if len(key) == 0 {
		key = []byte{0} // the smallest key
	}
	refuse := func(reason string) bool {
		s.pushCtrl(ctrlItem{resp: &pb.WatchResponse{
			Header:       &pb.ResponseHeader{Revision: h.rev},
			WatchId:      InvalidWatchID,
			Created:      true,
			Canceled:     true,
			CancelReason: reason,
		}})
		return true
	}
	if creq.StartRevision < 0 {
		return refuse(rpctypes.ErrCompacted.Error())
	}
	var end []byte
	switch {
	case len(creq.RangeEnd) == 0:
		end = nil
	case len(creq.RangeEnd) == 1 && creq.RangeEnd[0] == 0:
		end = []byte{}
	default:
		end = creq.RangeEnd
	}
	if len(end) != 0 && bytes.Compare(key, end) >= 0 {
		return refuse(ErrEmptyWatcherRange.Error())
	}
	id := creq.WatchId
	if id == AutoWatchID {
		for s.watchers[s.nextID] != nil {
			s.nextID++
		}
		id = s.nextID
		s.nextID++
	} else if s.watchers[id] != nil {
		return refuse(ErrWatcherDuplicateID.Error())
	}
	w := &watcher{
		stream:      s,
		id:          id,
		key:         bytes.Clone(key),
		end:         end,
		startRev:    creq.StartRevision,
		prevKV:      creq.PrevKv,
		fragment:    creq.Fragment,
		progressOn:  creq.ProgressNotify,
		progressDue: true,
		space:       make(chan struct{}, 1),
	}
	if end != nil {
		w.end = bytes.Clone(end)
	}
	for _, f := range creq.Filters {
		switch f {
		case pb.WatchCreateRequest_NOPUT:
			w.noPut = true
		case pb.WatchCreateRequest_NODELETE:
			w.noDelete = true
		}
	}
	s.watchers[id] = w
	h.register(w)
	s.pushCtrl(ctrlItem{
		resp: &pb.WatchResponse{Header: &pb.ResponseHeader{Revision: h.rev}, WatchId: id, Created: true},
		w:    w,
	})
	return true
}

// Cancel cancels watcher id. As in etcd, an unknown id gets no answer; a
// watcher canceled by compaction is still known until canceled. Events
// not yet sent are dropped. It returns false if the stream is closed.
func (s *Stream) Cancel(id int64) bool {
	h := s.hub
	s.mu.Lock()
	_, ok := s.watchers[id]
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return false
	}
	if !ok {
		return true
	}
	if !s.takeSlot() {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.watchers[id]
	if s.closed || w == nil {
		s.slots <- struct{}{}
		return !s.closed
	}
	h.unregister(w)
	delete(s.watchers, id)
	w.dead = true
	s.dropQueue(w, false)
	s.pushCtrl(ctrlItem{resp: &pb.WatchResponse{Header: &pb.ResponseHeader{Revision: h.rev}, WatchId: id, Canceled: true}})
	return true
}

// RequestProgress asks for a stream-wide progress response (watch ID -1).
// As etcd's RequestProgressAll, it is sent only if every watcher of the
// stream is live and past its start revision, and never on a stream
// without watchers.
func (s *Stream) RequestProgress() {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || len(s.watchers) == 0 || s.waiting >= maxProgressAll {
		return
	}
	for _, w := range s.watchers {
		if w.state != stateLive || h.rev < w.startRev {
			return
		}
	}
	p := &progressAll{rev: h.rev, pending: len(s.watchers)}
	s.waiting++
	s.ctrl = append(s.ctrl, ctrlItem{all: p})
	for _, w := range s.watchers {
		w.queue = append(w.queue, item{kind: kindMarker, all: p})
		s.schedule(w)
	}
}

// tick sends per-watcher progress responses, as etcd's progress ticker:
// to each live watcher with progress_notify past its start revision that
// had no events sent since the previous tick.
func (s *Stream) tick() {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	for _, w := range s.watchers {
		if !w.progressOn {
			continue
		}
		if w.progressDue && w.state == stateLive && h.rev >= w.startRev && len(w.queue) < h.cfg.QueueLen {
			w.queue = append(w.queue, item{kind: kindProgress, resp: &pb.WatchResponse{
				Header: &pb.ResponseHeader{Revision: h.rev}, WatchId: w.id,
			}})
			s.schedule(w)
		}
		w.progressDue = true
	}
}

// schedule makes w's queue eligible for the sender if it can be. s.mu is
// held.
func (s *Stream) schedule(w *watcher) {
	if w.announced && !w.inReady && !w.paused && !w.dead && len(w.queue) > 0 {
		w.inReady = true
		s.ready = append(s.ready, w)
		s.poke()
	}
}

// pushLive queues a live response for w (called by Notify under hub.mu).
// If the queue is over its bounds it is dropped instead and false
// returned: the watcher must fall behind.
func (s *Stream) pushLive(w *watcher, it item, cfg Config) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w.dead {
		return true
	}
	n := len(w.queue)
	if n >= cfg.QueueLen || (n > 0 && w.qbytes+it.size > cfg.QueueBytes) {
		s.dropQueue(w, true)
		return false
	}
	w.queue = append(w.queue, it)
	w.qbytes += it.size
	s.schedule(w)
	return true
}

// pushCatchUp queues a catch-up response or the compacted response; the
// caller made sure there is room. s.mu is taken.
func (s *Stream) pushCatchUp(w *watcher, it item) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w.dead {
		return
	}
	w.queue = append(w.queue, it)
	w.qbytes += it.size
	s.schedule(w)
}

// dropQueue empties w's queue, recording in w.dropFrom the first revision
// of the events it held. Progress markers in it are settled: voided if the
// watcher goes on (it fell behind), just counted if it is gone. s.mu is
// held.
func (s *Stream) dropQueue(w *watcher, void bool) {
	w.dropFrom = 0
	for i, it := range w.queue {
		switch it.kind {
		case kindEvents:
			if w.dropFrom == 0 {
				w.dropFrom = it.firstRev
			}
		case kindMarker:
			p := it.all
			if void {
				p.void = true
			}
			if i == 0 && w.paused {
				continue // already counted as reached
			}
			s.reached(p)
		}
	}
	w.queue = nil
	w.qbytes = 0
	w.paused = false
	s.pokeSpace(w)
}

// reached counts one watcher's queue as past p's marker. s.mu is held.
func (s *Stream) reached(p *progressAll) {
	p.pending--
	if p.pending == 0 {
		s.poke()
	}
}

func (s *Stream) pokeSpace(w *watcher) {
	select {
	case w.space <- struct{}{}:
	default:
	}
}

// Next returns the next response to send, waiting for one. It sends
// per-watcher progress responses on its ticker. Only one goroutine may
// call it.
func (s *Stream) Next(ctx context.Context) (Out, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return Out{}, ErrClosed
		}
		out, ok := s.take()
		s.mu.Unlock()
		if ok {
			return out, nil
		}
		select {
		case <-s.wake:
		case <-s.ticker.C:
			s.tick()
		case <-ctx.Done():
			return Out{}, ctx.Err()
		case <-s.done:
			return Out{}, ErrClosed
		}
	}
}

// take picks the next response: control responses in order (a progress
// response's place waits for its markers, and meanwhile watchers go on
// until they reach them), then watchers' queues round robin. s.mu is held.
func (s *Stream) take() (Out, bool) {
	for len(s.ctrl) > 0 {
		c := s.ctrl[0]
		if c.all != nil && c.all.pending > 0 {
			break
		}
		s.ctrl[0] = ctrlItem{}
		s.ctrl = s.ctrl[1:]
		if p := c.all; p != nil {
			s.waiting--
			for _, w := range s.watchers {
				if w.paused && len(w.queue) > 0 && w.queue[0].all == p {
					w.queue[0] = item{}
					w.queue = w.queue[1:]
					w.paused = false
					s.schedule(w)
				}
			}
			if p.void {
				continue
			}
			return Out{Resp: &pb.WatchResponse{Header: &pb.ResponseHeader{Revision: p.rev}, WatchId: InvalidWatchID}}, true
		}
		s.slots <- struct{}{}
		if c.w != nil {
			c.w.announced = true
			s.schedule(c.w)
		}
		return Out{Resp: c.resp}, true
	}
	for len(s.ready) > 0 {
		w := s.ready[0]
		s.ready[0] = nil
		s.ready = s.ready[1:]
		w.inReady = false
		if w.dead || w.paused || len(w.queue) == 0 {
			continue
		}
		it := w.queue[0]
		if it.kind == kindMarker {
			w.paused = true
			s.reached(it.all)
			continue
		}
		w.queue[0] = item{}
		w.queue = w.queue[1:]
		w.qbytes -= it.size
		if len(w.queue) == 0 {
			w.queue = nil
		}
		s.pokeSpace(w)
		if len(it.resp.Events) > 0 {
			w.progressDue = false
		}
		s.schedule(w)
		return Out{Resp: it.resp, Fragment: w.fragment}, true
	}
	return Out{}, false
}

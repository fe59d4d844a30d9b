package watchhub

import (
	"errors"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/sett-dev/sett/storage"
)

// retryDelay spaces out catch-up reads after a storage error.
const retryDelay = 100 * time.Millisecond

// startCatchUp starts w's replay goroutine. h.mu is held and w is in
// catch-up.
func (h *Hub) startCatchUp(w *watcher) {
	h.wg.Add(1)
	go h.catchUp(w)
}

// catchUp replays w's revisions from storage, one batch at a time, each
// queued only once the watcher's queue is empty, until the watcher has
// everything up to the notified revision; it then makes the watcher live.
func (h *Hub) catchUp(w *watcher) {
	defer h.wg.Done()
	s := w.stream
	for {
		if !s.waitEmpty(w) {
			return
		}
		h.mu.Lock()
		if w.state != stateCatchUp {
			h.mu.Unlock()
			return
		}
		if w.nextRev > h.rev {
			// Up to date: Notify takes over from here, skipping the
			// revisions below nextRev that were replayed.
			w.state = stateLive
			h.idx.add(w)
			h.mu.Unlock()
			return
		}
		if c := h.store.CompactRev(); w.nextRev < c {
			w.state = stateCompacted
			s.pushCatchUp(w, item{kind: kindCompacted, resp: &pb.WatchResponse{
				// etcd sends this one with header revision 0.
				Header:          &pb.ResponseHeader{},
				WatchId:         w.id,
				Canceled:        true,
				CompactRevision: c,
			}})
			h.mu.Unlock()
			return
		}
		from, to := w.nextRev, h.rev
		h.mu.Unlock()

		select {
		case h.scans <- struct{}{}:
		case <-s.done:
			return
		}
		it, next, err := h.replay(s, w, from, to)
		<-h.scans
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			if !errors.Is(err, storage.ErrCompacted) {
				h.log.Error("watch catch-up read failed; retrying", "watch-id", w.id, "from", from, "to", to, "err", err)
				select {
				case <-time.After(retryDelay):
				case <-s.done:
					return
				}
			}
			continue // a compaction is noticed above
		}
		h.mu.Lock()
		if w.state != stateCatchUp {
			h.mu.Unlock()
			return
		}
		w.nextRev = next
		if it.resp != nil {
			s.pushCatchUp(w, it)
		}
		h.mu.Unlock()
	}
}

// waitEmpty waits until w's queue is empty; false if w is gone.
func (s *Stream) waitEmpty(w *watcher) bool {
	for {
		s.mu.Lock()
		dead, empty := w.dead, len(w.queue) == 0
		s.mu.Unlock()
		if dead {
			return false
		}
		if empty {
			return true
		}
		select {
		case <-w.space:
		case <-s.done:
			return false
		}
	}
}

// replay reads one catch-up batch of w's events in [from, to]: up to
// BatchRevs revisions holding events in w's range (counted before the
// filters, as etcd) and about BatchBytes, never splitting a revision. It
// returns the response (nil resp if every event was filtered out) and the
// next revision to read.
func (h *Hub) replay(s *Stream, w *watcher, from, to int64) (item, int64, error) {
	var (
		evs  []*mvccpb.Event
		revs int
		size int
		next = to + 1
	)
	err := h.store.Events(s.ctx, from, to, w.prevKV, func(r storage.Revision) bool {
		matched := false
		start, added := len(evs), 0
		for _, ev := range r.Events {
			if !inRange(ev.Kv.Key, w.key, w.end) {
				continue
			}
			matched = true
			if w.filtered(ev) {
				continue
			}
			evs = append(evs, ev)
			added += eventSize(ev)
		}
		if !matched {
			return true
		}
		if revs == h.cfg.BatchRevs || (start > 0 && size+added > h.cfg.BatchBytes) {
			evs = evs[:start]
			next = r.Rev
			return false
		}
		revs++
		size += added
		return true
	})
	if err != nil {
		return item{}, 0, err
	}
	if len(evs) == 0 {
		return item{}, next, nil
	}
	return item{
		kind:     kindEvents,
		resp:     &pb.WatchResponse{Header: &pb.ResponseHeader{Revision: to}, WatchId: w.id, Events: evs},
		size:     size,
		firstRev: evs[0].Kv.ModRevision,
	}, next, nil
}

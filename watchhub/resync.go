package watchhub

// Resync is told that the store jumped to rev without Notify seeing the
// revisions in between (a member installed a snapshot from another member).
// Every live watcher goes to catch-up from the first revision it has not
// been given, so it replays the missing revisions from the new state's
// revision tree: nothing is lost, duplicated or reordered.
func (h *Hub) Resync(rev int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if rev <= h.rev {
		return
	}
	for s := range h.streams {
		s.mu.Lock()
		for _, w := range s.watchers {
			if w.state != stateLive {
				continue
			}
			h.idx.remove(w)
			w.state = stateCatchUp
			w.nextRev = max(w.nextRev, h.rev+1)
			h.startCatchUp(w)
		}
		s.mu.Unlock()
	}
	h.rev = rev
}

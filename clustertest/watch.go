package clustertest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// WatchEvent is one event as a watcher received it.
type WatchEvent struct {
	Rev    int64 // the event's (mod) revision
	Key    string
	Value  string
	Delete bool
}

// WatchResponse is one response as a watcher received it.
type WatchResponse struct {
	Events   []WatchEvent
	Progress bool  // a progress notification (no events)
	Rev      int64 // header revision
	Session  int   // the watch (1, 2, … after each resumption) that got it
}

// WatchLog is everything a watcher received, in order.
type WatchLog struct {
	Name      string
	StartRev  int64
	Responses []WatchResponse
	Errors    []string // responses that ended a watch (canceled, error)
	Sessions  int
}

// Watcher watches a prefix on one member from a revision, requests
// progress notifications every ProgressEvery, and resumes its watch itself
// (from the revision after the last event it got) after every few
// responses, and whenever the watch ends.
type Watcher struct {
	Name          string
	ResumeAfter   int // responses per watch before resuming it; 0: never
	ProgressEvery time.Duration

	mu   sync.Mutex
	log  WatchLog
	upTo int64 // every event up to upTo has been received
	next int64

	cancel context.CancelFunc
	done   chan struct{}
}

// StartWatcher starts watching prefix through cli from startRev.
func StartWatcher(ctx context.Context, name string, cli *clientv3.Client, prefix string, startRev int64) *Watcher {
	w := &Watcher{Name: name, ResumeAfter: 20 + rand.IntN(40), ProgressEvery: 300 * time.Millisecond, next: startRev, done: make(chan struct{})}
	w.log = WatchLog{Name: name, StartRev: startRev}
	w.upTo = startRev - 1
	ctx, w.cancel = context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		w.watch(ctx, cli, prefix)
	}()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(w.ProgressEvery):
			}
			rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
			cli.RequestProgress(rctx) // failures show as missing notifications only
			rcancel()
		}
	}()
	go func() {
		wg.Wait()
		close(w.done)
	}()
	return w
}

func (w *Watcher) watch(ctx context.Context, cli *clientv3.Client, prefix string) {
	for ctx.Err() == nil {
		w.mu.Lock()
		w.log.Sessions++
		session, from := w.log.Sessions, w.next
		w.mu.Unlock()
		sctx, scancel := context.WithCancel(ctx)
		wch := cli.Watch(sctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(from))
		n := 0
		for resp := range wch {
			if err := resp.Err(); err != nil || resp.Canceled {
				w.mu.Lock()
				w.log.Errors = append(w.log.Errors, fmt.Sprintf("session %d: canceled=%v err=%v", session, resp.Canceled, err))
				w.mu.Unlock()
				break
			}
			w.record(resp, session)
			if n++; w.ResumeAfter > 0 && n >= w.ResumeAfter {
				break
			}
		}
		scancel()
		for range wch { // drain until clientv3 closes it
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (w *Watcher) record(resp clientv3.WatchResponse, session int) {
	r := WatchResponse{Rev: resp.Header.Revision, Session: session, Progress: resp.IsProgressNotify()}
	for _, ev := range resp.Events {
		r.Events = append(r.Events, WatchEvent{
			Rev:    ev.Kv.ModRevision,
			Key:    string(ev.Kv.Key),
			Value:  string(ev.Kv.Value),
			Delete: ev.Type == clientv3.EventTypeDelete,
		})
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.log.Responses = append(w.log.Responses, r)
	if n := len(r.Events); n > 0 {
		w.next = r.Events[n-1].Rev + 1
		w.upTo = max(w.upTo, r.Events[n-1].Rev)
	}
	if r.Progress {
		w.upTo = max(w.upTo, r.Rev)
	}
}

// UpTo is the revision up to which the watcher has received everything,
// according to the events and progress notifications it got.
func (w *Watcher) UpTo() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.upTo
}

// WaitFor waits until UpTo reaches rev.
func (w *Watcher) WaitFor(ctx context.Context, rev int64) error {
	for w.UpTo() < rev {
		select {
		case <-ctx.Done():
			return fmt.Errorf("watcher %s: received up to revision %d, want %d", w.Name, w.UpTo(), rev)
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

// Stop ends the watcher and returns what it received.
func (w *Watcher) Stop() WatchLog {
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.log
}

// RevHistory is a cluster's complete event history: the events of every
// revision in (First-1, Last].
type RevHistory struct {
	First, Last int64
	ByRev       map[int64][]WatchEvent
	Events      []WatchEvent // in order
}

// NewRevHistory builds the reference history from a watch log that starts
// at first and must cover every revision up to last, in order, each once:
// each revision has at least one event, as every revision in the workload
// is a write to its keys.
func NewRevHistory(ref WatchLog, first, last int64) (*RevHistory, error) {
	h := &RevHistory{First: first, Last: last, ByRev: map[int64][]WatchEvent{}}
	for _, r := range ref.Responses {
		for _, ev := range r.Events {
			if ev.Rev > last {
				return nil, fmt.Errorf("reference watch %s: event at revision %d beyond the last %d", ref.Name, ev.Rev, last)
			}
			h.ByRev[ev.Rev] = append(h.ByRev[ev.Rev], ev)
			h.Events = append(h.Events, ev)
		}
	}
	for i := 1; i < len(h.Events); i++ {
		if h.Events[i].Rev < h.Events[i-1].Rev {
			return nil, fmt.Errorf("reference watch %s: revision %d after %d", ref.Name, h.Events[i].Rev, h.Events[i-1].Rev)
		}
	}
	for rev := first; rev <= last; rev++ {
		if len(h.ByRev[rev]) == 0 {
			return nil, fmt.Errorf("reference watch %s: no event at revision %d (of %d..%d)", ref.Name, rev, first, last)
		}
	}
	return h, nil
}

// CheckWatch checks one watcher's log against the reference history:
//   - ordered: event revisions never go down;
//   - unique: no event is delivered twice;
//   - atomic: a revision's events all come in one response;
//   - reliable and resumable: the events received, across every resumed
//     watch, are exactly the reference's events from the log's start, with
//     the same keys, values and types, without a gap;
//   - bookmarkable: when a progress notification for revision P arrives,
//     every event up to P has been received before it.
//
// If complete, the watcher must also have received everything up to the
// reference's last revision.
func CheckWatch(ref *RevHistory, log WatchLog, complete bool) []error {
	var errs []error
	fail := func(format string, args ...any) {
		if len(errs) < 10 {
			errs = append(errs, fmt.Errorf("watcher %s: "+format, append([]any{log.Name}, args...)...))
		}
	}
	for _, e := range log.Errors {
		fail("watch ended: %s", e)
	}
	// The reference events the log must reproduce, in order.
	var want []WatchEvent
	for _, ev := range ref.Events {
		if ev.Rev >= log.StartRev {
			want = append(want, ev)
		}
	}
	// Ordered, unique, atomic: over the responses as received.
	var last int64
	seen := map[WatchEvent]bool{}
	for i, r := range log.Responses {
		perRev := map[int64]int{}
		for _, ev := range r.Events {
			if ev.Rev < last {
				fail("response %d: revision %d after %d (unordered)", i, ev.Rev, last)
			}
			last = max(last, ev.Rev)
			if seen[ev] {
				fail("response %d: event %+v delivered again (not unique)", i, ev)
			}
			seen[ev] = true
			perRev[ev.Rev]++
		}
		for rev, n := range perRev {
			if all := len(ref.ByRev[rev]); all > 0 && n != all {
				fail("response %d: %d of revision %d's %d events (not atomic)", i, n, rev, all)
			}
		}
	}
	// Reliable, resumable, bookmarkable: the events are the reference's,
	// in its order, and no progress notification runs ahead of them.
	got := 0 // events received so far
	for i, r := range log.Responses {
		if r.Progress {
			if got < len(want) && want[got].Rev <= r.Rev {
				fail("response %d: progress notification at revision %d, but the event at revision %d (%s) was not delivered before it", i, r.Rev, want[got].Rev, want[got].Key)
			}
			continue
		}
		for _, ev := range r.Events {
			switch {
			case got >= len(want):
				fail("response %d: event %+v beyond the reference history", i, ev)
			case ev != want[got]:
				fail("response %d: got event %+v, want %+v (missing, duplicated or different)", i, ev, want[got])
				return errs // the streams no longer line up
			}
			got++
		}
	}
	if complete && got < len(want) {
		fail("received %d events, up to revision %d; the history has %d up to revision %d", got, last, len(want), ref.Last)
	}
	return errs
}

// CheckAcks checks that every acknowledged write is in the reference
// history at its revision, and that every event of the reference history
// is a write some client made (acknowledged or not).
func CheckAcks(ref *RevHistory, w *Workload, acks []Ack, ops []Input) []error {
	var errs []error
	fail := func(format string, args ...any) {
		if len(errs) < 10 {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	for _, a := range acks {
		found := false
		for _, ev := range ref.ByRev[a.Rev] {
			if ev.Key == w.Key(a.Key) && ev.Delete == a.Delete && (a.Delete || ev.Value == a.Value) {
				found = true
			}
		}
		if !found {
			fail("acknowledged write lost: %+v; revision %d has %+v", a, a.Rev, ref.ByRev[a.Rev])
		}
	}
	written := map[string]bool{}
	for _, in := range ops {
		if in.Kind == OpPut || in.Kind == OpCAS || in.Kind == OpPutPair {
			written[w.Key(in.Key)+"="+in.Value] = true
		}
		if in.Kind == OpPutPair {
			written[w.Key(in.Key2)+"="+in.Value2] = true
		}
	}
	for _, ev := range ref.Events {
		if !ev.Delete && !written[ev.Key+"="+ev.Value] {
			fail("event %+v is no client's write", ev)
		}
	}
	return errs
}

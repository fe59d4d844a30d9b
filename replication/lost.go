package replication

import (
	"errors"

	"go.etcd.io/raft/v3/raftpb"
)

// errEntryLost answers a proposer whose entry raft will never commit:
// another entry was committed at its index, or an entry of a later term at
// or before it. Its request may then be proposed again without being
// applied twice.
var errEntryLost = errors.New("replication: proposal lost")

// A proposal's entry is placed when this member's log receives it (its own
// appends as leader, the leader's as follower): it then has one index and
// term in every log that holds it, since raft appends a proposal once.
// Committed entries then decide its fate (raft's log matching, and log
// terms never decreasing along a log):
//   - committed at its index with its request ID: applied, answered as usual;
//   - another entry committed at its index, or an entry of a later term
//     committed at or before its index: lost for good.

// place records where this member's log holds entries of waiting
// proposers. Called on the Ready loop before the entries can be applied.
func (w *waitRegistry) place(ents []raftpb.Entry) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.m) == 0 {
		return
	}
	for _, e := range ents {
		if e.Type != raftpb.EntryNormal {
			continue
		}
		id, ok := decodeRequestID(e.Data)
		if !ok {
			continue
		}
		if wt := w.m[id]; wt != nil && wt.req != nil {
			wt.index, wt.term = e.Index, e.Term
			w.byIndex[e.Index] = id
		}
	}
}

// settle answers errEntryLost to the placed proposers the committed
// entries ents (in index order, contiguous, already applied) prove lost,
// and records the newest term applied. A proposer whose own entry is in
// ents has been answered already. Only the entries' own indexes are
// looked at, unless ents bring a new term: then every placed proposer.
func (w *waitRegistry) settle(ents []raftpb.Entry) {
	if len(ents) == 0 {
		return
	}
	first, last := ents[0].Index, ents[len(ents)-1].Index
	maxTerm := ents[len(ents)-1].Term
	w.mu.Lock()
	defer w.mu.Unlock()
	newTerm := maxTerm > w.appliedTerm
	if newTerm {
		w.appliedTerm = maxTerm
		close(w.termc)
		w.termc = make(chan struct{})
	}
	if len(w.byIndex) == 0 && !newTerm {
		return
	}
	lost := func(id uint64, wt *waiter) {
		delete(w.m, id)
		wt.resc <- errEntryLost
	}
	for _, e := range ents {
		id, ok := w.byIndex[e.Index]
		if !ok {
			continue
		}
		delete(w.byIndex, e.Index)
		if wt := w.m[id]; wt != nil && wt.index == e.Index {
			if eid, _ := decodeRequestID(e.Data); eid != id || e.Term != wt.term {
				lost(id, wt)
			}
		}
	}
	if !newTerm {
		return
	}
	for id, wt := range w.m {
		if wt.req == nil || wt.index == 0 {
			continue
		}
		switch {
		case wt.index > last:
			// Every entry of ents is before it: one of a later term means
			// the committed entry at its index is of a later term too.
			if maxTerm > wt.term {
				lost(id, wt)
			}
		case wt.index >= first:
			e := ents[wt.index-first]
			if eid, _ := decodeRequestID(e.Data); eid != id || e.Term != wt.term {
				lost(id, wt)
			}
		}
	}
	for i := range w.byIndex {
		if i < first {
			delete(w.byIndex, i)
		}
	}
}

// termAbove returns whether an entry of a term after term was applied,
// and if not, a channel closed when the newest applied term changes.
func (w *waitRegistry) termAbove(term uint64) (bool, <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.appliedTerm > term, w.termc
}

// placed says whether id's entry is in this member's log.
func (w *waitRegistry) placed(id uint64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	wt := w.m[id]
	return wt != nil && wt.index != 0
}

package replication

import (
	"fmt"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/sett-dev/sett/storage"
)

// applyCommitted applies committed entries in index order: normal entries
// in batches (one storage transaction each), every configuration change
// on its own so that raft's configuration and the transport's peers
// follow storage's membership entry by entry. Entries at or below the
// store's applied index are already in it (a replay after a restart, or
// covered by an installed snapshot): storage skips them, raft still
// applies their configuration changes.
func (n *Node) applyCommitted(ents []raftpb.Entry) error {
	if len(ents) == 0 {
		return nil
	}
	done := n.store.AppliedIndex()
	var last uint64
	batch := make([]storage.Entry, 0, len(ents))
	ids := make([]uint64, 0, len(ents))
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		start := time.Now()
		results, revs, err := n.store.Apply(batch)
		if err != nil {
			return err
		}
		took := time.Since(start)
		if fn := n.commitObserver.Load(); fn != nil {
			(*fn)(took)
		}
		if limit := n.cfg.Options.warningApplyDuration(); took > limit {
			n.warnSlowApply(took, limit, batch, results)
		}
		if n.cfg.Observer != nil && len(revs) > 0 {
			n.cfg.Observer(revs)
		}
		for i, id := range ids {
			if id == 0 {
				continue
			}
			if w := n.waits.take(id); w != nil && w.req != nil {
				w.resc <- results[i]
			}
		}
		batch, ids = batch[:0], ids[:0]
		return nil
	}
	for _, e := range ents {
		skip := e.Index <= done
		switch e.Type {
		case raftpb.EntryNormal:
			if skip {
				break
			}
			entry, id, err := n.decodeEntry(e)
			if err != nil {
				return err
			}
			batch = append(batch, entry)
			ids = append(ids, id)
		case raftpb.EntryConfChange:
			if err := flush(); err != nil {
				return err
			}
			if err := n.applyConfChange(e, skip); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unsupported entry type %v at index %d", e.Type, e.Index)
		}
		if e.Type == raftpb.EntryConfChange {
			n.setApplied(e.Index)
		}
		last = e.Index
	}
	if err := flush(); err != nil {
		return err
	}
	n.setApplied(last)
	// The proposers answered above are gone; what is left of those whose
	// entries these displaced may propose again.
	n.waits.settle(ents)
	return nil
}

func (n *Node) setApplied(index uint64) {
	if index > n.raftApplied.Load() {
		n.raftApplied.Store(index)
		n.applied.advance(index)
	}
}

// applyJob is a Ready's committed entries for the applier; done, if set,
// is closed once they are applied.
type applyJob struct {
	ents []raftpb.Entry
	done chan struct{}
}

// applier applies committed entries in order, off the Ready loop, so that
// a long apply (a revoke of many keys) does not hold up heartbeats.
func (n *Node) applier() {
	for {
		select {
		case job := <-n.applyc:
			if err := n.applyCommitted(job.ents); err != nil {
				n.fail(fmt.Errorf("apply: %w", err))
			}
			if job.done != nil {
				close(job.done)
			}
		case <-n.stopc:
			return
		}
	}
}

// apply hands entries to the applier; wait waits until they (and all
// before them) are applied.
func (n *Node) apply(ents []raftpb.Entry, wait bool) error {
	job := applyJob{ents: ents}
	if wait {
		job.done = make(chan struct{})
	}
	select {
	case n.applyc <- job:
	case <-n.stopc:
		return ErrStopped
	}
	if !wait {
		return nil
	}
	select {
	case <-job.done:
		return nil
	case <-n.stopc:
		return ErrStopped
	}
}

// decodeEntry turns a normal entry into a storage entry, reusing the
// proposer's request when it waits on this member.
func (n *Node) decodeEntry(e raftpb.Entry) (storage.Entry, uint64, error) {
	if len(e.Data) == 0 {
		return storage.Entry{Index: e.Index}, 0, nil
	}
	id, ok := decodeRequestID(e.Data)
	if !ok {
		return storage.Entry{}, 0, fmt.Errorf("undecodable entry at index %d", e.Index)
	}
	if w := n.waits.peek(id); w != nil && w.req != nil {
		return storage.Entry{Index: e.Index, Req: w.req}, id, nil
	}
	req := &pb.InternalRaftRequest{}
	if err := req.Unmarshal(e.Data[9:]); err != nil {
		return storage.Entry{}, 0, fmt.Errorf("entry at index %d: %w", e.Index, err)
	}
	return storage.Entry{Index: e.Index, Req: req}, id, nil
}

// applyConfChange records a membership change in storage (unless skip),
// then in raft, then in the transport.
func (n *Node) applyConfChange(e raftpb.Entry, skip bool) error {
	var cc raftpb.ConfChange
	if err := cc.Unmarshal(e.Data); err != nil {
		return fmt.Errorf("configuration change at index %d: %w", e.Index, err)
	}
	change, err := memberChangeOf(cc)
	if err != nil {
		return fmt.Errorf("configuration change at index %d: %w", e.Index, err)
	}
	// Checked again when applied, against the membership every member has
	// at this index: two changes proposed at once cannot both pass. A
	// refused change is recorded, so that a replay refuses it too.
	var verr error
	if skip {
		if n.store.ConfRejected(e.Index) {
			verr = ErrMemberExists // the original answer is gone; nobody waits
		}
	} else if verr = n.validateChange(change); verr != nil {
		if _, _, err := n.store.Apply([]storage.Entry{{Index: e.Index, Member: &storage.MemberChange{Type: storage.MemberRejected}}}); err != nil {
			return err
		}
	}
	if verr != nil {
		cc.NodeID = 0 // raft applies it as a no-op
		n.raft.ApplyConfChange(cc)
		if w := n.waits.take(cc.ID); w != nil && w.req == nil {
			n.confDone = append(n.confDone, confAnswer{w, verr})
		}
		return nil
	}
	if !skip {
		if _, _, err := n.store.Apply([]storage.Entry{{Index: e.Index, Member: change}}); err != nil {
			return err
		}
	}
	n.confState = *n.raft.ApplyConfChange(cc)
	n.logMemberChange(change)
	// A member raft brings up to date by snapshot must find itself in the
	// snapshot's configuration: snapshot at every configuration change.
	n.snapshotDue = true
	n.updateVoterState()
	if err := n.syncPeers(); err != nil {
		return err
	}
	if w := n.waits.take(cc.ID); w != nil && w.req == nil {
		// Answered after Advance: raft refuses a new configuration change
		// until it knows this one is applied.
		n.confDone = append(n.confDone, confAnswer{w, nil})
	}
	if change.Type == storage.MemberRemove && change.Member.ID == n.id {
		n.log.Warn("this member was removed from the cluster; stopping")
		go n.fail(ErrMemberRemoved)
	}
	return nil
}

package replication

import (
	"fmt"
	"slices"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/sett-dev/sett/replication/raftlog"
)

// forceNewCluster rewrites a restarting member's raft log as etcd's
// --force-new-cluster does: entries not committed (beyond the hard
// state's commit index and the store's applied index) are dropped, and
// configuration changes that remove every other member (and add this one
// if the configuration lacks it) are appended as committed. Applied at
// start, they leave a one-member cluster with every committed write.
func (n *Node) forceNewCluster(st raftlog.State) (raftlog.State, error) {
	hs := st.HardState
	// What the store applied was committed, even if the hard state
	// recording it did not reach the disk.
	hs.Commit = max(hs.Commit, n.store.AppliedIndex())
	committed := st.Entries
	for i, e := range st.Entries {
		if e.Index > hs.Commit {
			committed = st.Entries[:i]
			break
		}
	}
	ids, err := confMembers(st.Snapshot.ConfState, committed)
	if err != nil {
		return st, err
	}
	last := max(st.Snapshot.Index, hs.Commit)
	if len(committed) > 0 {
		last = committed[len(committed)-1].Index
	}
	var changes []raftpb.ConfChange
	for _, id := range ids {
		if id != n.id {
			changes = append(changes, raftpb.ConfChange{Type: raftpb.ConfChangeRemoveNode, NodeID: id})
		}
	}
	removed := len(changes)
	if !slices.Contains(ids, n.id) {
		changes = append(changes, raftpb.ConfChange{Type: raftpb.ConfChangeAddNode, NodeID: n.id, Context: encodeMember(n.cfg.Self)})
	}
	added := make([]raftpb.Entry, 0, len(changes))
	for i, cc := range changes {
		data, err := cc.Marshal()
		if err != nil {
			return st, err
		}
		added = append(added, raftpb.Entry{Type: raftpb.EntryConfChange, Term: hs.Term, Index: last + uint64(i) + 1, Data: data})
	}
	dropped := len(st.Entries) - len(committed)
	if len(added) > 0 {
		hs.Commit = added[len(added)-1].Index
	}
	// The first new entry replaces the dropped tail in the log.
	if err := n.wal.Save(hs, added); err != nil {
		return st, fmt.Errorf("force new cluster: %w", err)
	}
	if dropped > 0 && len(added) == 0 {
		// Nothing appended replaces the uncommitted tail: a no-op entry
		// at its first index does (raft commits it as any other).
		noop := raftpb.Entry{Type: raftpb.EntryNormal, Term: hs.Term, Index: last + 1}
		hs.Commit = noop.Index
		if err := n.wal.Save(hs, []raftpb.Entry{noop}); err != nil {
			return st, fmt.Errorf("force new cluster: %w", err)
		}
		added = append(added, noop)
	}
	n.log.Info("forcing a new cluster from this member's data", "local-member-id", fmt.Sprintf("%x", n.id),
		"removed-members", removed, "dropped-uncommitted-entries", dropped, "commit-index", hs.Commit)
	st.HardState = hs
	st.Entries = append(slices.Clip(committed), added...)
	return st, nil
}

// confMembers are the IDs of raft's configuration after the snapshot's and
// the configuration changes among ents, in order.
func confMembers(cs raftpb.ConfState, ents []raftpb.Entry) ([]uint64, error) {
	set := map[uint64]bool{}
	for _, ids := range [][]uint64{cs.Voters, cs.Learners, cs.VotersOutgoing, cs.LearnersNext} {
		for _, id := range ids {
			set[id] = true
		}
	}
	for _, e := range ents {
		if e.Type != raftpb.EntryConfChange {
			continue
		}
		var cc raftpb.ConfChange
		if err := cc.Unmarshal(e.Data); err != nil {
			return nil, fmt.Errorf("configuration change at index %d: %w", e.Index, err)
		}
		switch cc.Type {
		case raftpb.ConfChangeAddNode, raftpb.ConfChangeAddLearnerNode:
			set[cc.NodeID] = true
		case raftpb.ConfChangeRemoveNode:
			delete(set, cc.NodeID)
		}
	}
	ids := make([]uint64, 0, len(set))
	for id := range set {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

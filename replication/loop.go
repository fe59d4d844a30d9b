package replication

import (
	"fmt"
	"strings"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// run is the Ready loop: the only goroutine that writes the raft log,
// raft's memory storage and (through applyCommitted) the store.
func (n *Node) run() {
	defer close(n.donec)
	go n.applier()
	ticker := time.NewTicker(n.cfg.TickInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ticker.C:
			n.raft.Tick()
			n.campaignAlone()
		case rd := <-n.raft.Ready():
			if err := n.handleReady(rd); err != nil {
				n.fail(err)
				n.waits.failAll(ErrStopped)
				return
			}
			n.raft.Advance()
			for _, a := range n.confDone {
				a.w.resc <- a.err
			}
			n.confDone = n.confDone[:0]
			// A one-voter cluster need not wait out an election timeout:
			// it campaigns once its configuration is applied.
			n.campaignAlone()
		case <-n.stopc:
			n.waits.failAll(ErrStopped)
			return
		}
	}
}

// handleReady handles one raft.Ready in the order raft requires: a snapshot and
// the new entries and hard state are durable before this member
// acknowledges them (messages) or applies what they commit.
func (n *Node) handleReady(rd raft.Ready) error {
	if !raft.IsEmptyHardState(rd.HardState) {
		n.term.Store(rd.HardState.Term)
		n.committed.Store(rd.HardState.Commit)
	}
	if rd.SoftState != nil {
		n.raftState = rd.SoftState.RaftState
		n.setLeader(rd.SoftState.Lead)
	}
	if len(rd.ReadStates) > 0 {
		n.reads.deliver(rd.ReadStates)
	}
	// Before anything they hold can be applied: see waitRegistry.place.
	n.waits.place(rd.Entries)
	// A leader may send its appends while it writes them itself (raft
	// thesis 10.2.1): it counts its own vote only once Advance reports them
	// durable. Everything else goes out after the write.
	leader := n.lead.Load() == n.id
	if leader {
		n.tr.Send(rd.Messages)
	}
	if !raft.IsEmptySnap(rd.Snapshot) {
		if err := n.installSnapshot(rd.Snapshot); err != nil {
			return fmt.Errorf("install snapshot: %w", err)
		}
	}
	if err := n.wal.Save(rd.HardState, rd.Entries); err != nil {
		return fmt.Errorf("save raft log: %w", err)
	}
	if !raft.IsEmptyHardState(rd.HardState) {
		if err := n.mem.SetHardState(rd.HardState); err != nil {
			return err
		}
	}
	if err := n.mem.Append(rd.Entries); err != nil {
		return err
	}
	if !leader {
		n.tr.Send(rd.Messages)
	}
	// Configuration changes are applied before the Ready is done: raft's
	// configuration, the transport's peers and the next snapshot's
	// configuration state must follow them at once.
	wait := false
	for _, e := range rd.CommittedEntries {
		wait = wait || e.Type != raftpb.EntryNormal
	}
	if len(rd.CommittedEntries) > 0 {
		if err := n.apply(rd.CommittedEntries, wait); err != nil {
			return err
		}
	}
	return n.maybeSnapshot()
}

// maybeSnapshot takes a raft snapshot every SnapshotCount applied entries:
// storage is synced, so the log may drop the entries it covers (keeping
// CatchUpEntries in memory for followers a little behind).
func (n *Node) maybeSnapshot() error {
	// Read before the sync: the store is then durable at least up to it.
	// The configuration state is the one of every configuration change
	// applied, which the Ready loop waited for.
	applied := n.raftApplied.Load()
	if applied <= n.snapIndex || (applied-n.snapIndex < n.cfg.SnapshotCount && !n.snapshotDue) {
		return nil
	}
	n.snapshotDue = false
	if err := n.store.Sync(); err != nil {
		return err
	}
	snap, err := n.mem.CreateSnapshot(applied, &n.confState, nil)
	if err != nil {
		return err
	}
	if err := n.wal.SaveSnapshot(snap.Metadata); err != nil {
		return err
	}
	n.snapIndex = applied
	if applied > n.cfg.CatchUpEntries {
		if err := n.mem.Compact(applied - n.cfg.CatchUpEntries); err != nil && err != raft.ErrCompacted {
			return err
		}
	}
	return n.wal.ReleaseTo(n.snapIndex)
}

// installSnapshot replaces the store with the snapshot another member sent
// (received in full by snapshots.Receive before raft saw the message).
func (n *Node) installSnapshot(snap raftpb.Snapshot) error {
	meta := snap.Metadata
	// Everything committed before the snapshot is applied first.
	if err := n.apply(nil, true); err != nil {
		return err
	}
	if err := n.installReceived(meta); err != nil {
		return err
	}
	if err := n.wal.SaveSnapshot(meta); err != nil {
		return err
	}
	if err := n.mem.ApplySnapshot(snap); err != nil {
		return err
	}
	n.confState = meta.ConfState
	n.snapIndex = meta.Index
	n.setApplied(meta.Index)
	n.installs.Add(1)
	n.updateVoterState()
	if n.cfg.Resync != nil {
		n.cfg.Resync(n.store.Rev())
	}
	n.log.Info("installed snapshot", "index", meta.Index, "store-applied-index", n.store.AppliedIndex(), "revision", n.store.Rev())
	return n.syncPeers()
}

// syncPeers makes the transport's peers storage's members, touching only
// the peers that changed (an update resets the peer's stream).
func (n *Node) syncPeers() error {
	members, _, err := n.store.Members()
	if err != nil {
		return err
	}
	n.peersMu.Lock()
	defer n.peersMu.Unlock()
	if n.peers == nil {
		n.peers = map[uint64]string{}
	}
	have := map[uint64]bool{}
	for _, m := range members {
		have[m.ID] = true
		if m.ID == n.id {
			n.isLearner.Store(m.IsLearner)
			continue
		}
		urls := strings.Join(m.PeerURLs, ",")
		old, known := n.peers[m.ID]
		switch {
		case !known:
			n.tr.AddPeer(m.ID, m.PeerURLs)
		case old != urls:
			n.tr.UpdatePeer(m.ID, m.PeerURLs)
		}
		n.peers[m.ID] = urls
	}
	for id := range n.peers {
		if !have[id] {
			n.tr.RemovePeer(id)
			delete(n.peers, id)
		}
	}
	return nil
}

func (n *Node) updateVoterState() {
	cs := n.confState
	n.singleVoter.Store(len(cs.Voters) == 1 && cs.Voters[0] == n.id && len(cs.VotersOutgoing) == 0)
}

// campaignAlone starts an election at once when this member is the only
// voter and follows nobody: it need not wait out an election timeout.
func (n *Node) campaignAlone() {
	if n.singleVoter.Load() && n.lead.Load() == 0 && n.raftState == raft.StateFollower {
		n.raft.Campaign(n.ctx)
	}
}

package replication

import (
	"context"
	"encoding/binary"
	"errors"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// callDropped tells a member that raft here dropped the entries it
// forwarded (their request IDs, 8 bytes each): it may propose them again.
const callDropped = "dropped"

// mayDropForwarded says whether raft here may drop a forwarded proposal
// without telling anyone: this member does not lead, or hands leadership
// over.
func (n *Node) mayDropForwarded() bool {
	return n.lead.Load() != n.id || n.transferring.Load()
}

// stepForwarded proposes the entries of a peer's forwarded proposal one
// by one, so that raft's refusal is known, and tells the peer which raft
// dropped: those are in no log. Entries raft forwards on to a leader are
// not reported. Configuration changes go to raft as they came.
func (n *Node) stepForwarded(ctx context.Context, m raftpb.Message) error {
	for _, e := range m.Entries {
		if e.Type != raftpb.EntryNormal {
			return n.raft.Step(ctx, m)
		}
	}
	go func() {
		ctx, cancel := context.WithTimeout(n.ctx, n.requestTimeout())
		defer cancel()
		var dropped []byte
		for _, e := range m.Entries {
			err := n.raft.Propose(ctx, e.Data)
			if !errors.Is(err, raft.ErrProposalDropped) {
				continue
			}
			if id, ok := decodeRequestID(e.Data); ok {
				dropped = binary.BigEndian.AppendUint64(dropped, id)
			}
		}
		if len(dropped) > 0 {
			if _, err := n.tr.Call(ctx, m.From, callDropped, dropped); err != nil {
				n.log.Debug("telling a member of dropped proposals failed", "member", m.From, "err", err)
			}
		}
	}()
	return nil
}

// handleDropped answers errEntryLost to this member's proposers whose
// forwarded entries a peer's raft dropped.
func (n *Node) handleDropped(_ context.Context, req []byte) ([]byte, error) {
	for len(req) >= 8 {
		n.waits.dropped(binary.BigEndian.Uint64(req))
		req = req[8:]
	}
	return nil, nil
}

// dropped answers errEntryLost to id's proposer if its entry is in no log
// this member knows of.
func (w *waitRegistry) dropped(id uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if wt := w.m[id]; wt != nil && wt.req != nil && wt.index == 0 {
		delete(w.m, id)
		wt.resc <- errEntryLost
	}
}

package replication

import (
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3/raftpb"
)

func entryOf(t *testing.T, index, term, id uint64) raftpb.Entry {
	t.Helper()
	data, err := encodeRequest(id, &pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: id}})
	if err != nil {
		t.Fatal(err)
	}
	return raftpb.Entry{Index: index, Term: term, Type: raftpb.EntryNormal, Data: data}
}

// Committed entries prove a placed proposal lost when another entry is
// committed at its index, or one of a later term before it; nothing else
// does.
func TestSettleLostProposals(t *testing.T) {
	for _, tc := range []struct {
		name      string
		placed    []raftpb.Entry // entries of waiting proposers in this member's log
		committed []raftpb.Entry
		lost      []uint64
	}{
		{name: "another entry at its index",
			placed:    []raftpb.Entry{entryOf(t, 10, 2, 7)},
			committed: []raftpb.Entry{entryOf(t, 9, 3, 100), entryOf(t, 10, 3, 101)}, lost: []uint64{7}},
		{name: "a later term before it",
			placed:    []raftpb.Entry{entryOf(t, 10, 2, 7)},
			committed: []raftpb.Entry{entryOf(t, 8, 3, 100)}, lost: []uint64{7}},
		{name: "same term before it",
			placed:    []raftpb.Entry{entryOf(t, 10, 2, 7)},
			committed: []raftpb.Entry{entryOf(t, 8, 2, 100), entryOf(t, 9, 2, 101)}},
		{name: "its own entry",
			placed:    []raftpb.Entry{entryOf(t, 10, 2, 7)},
			committed: []raftpb.Entry{entryOf(t, 10, 2, 7)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var w waitRegistry
			w.init()
			waiters := map[uint64]*waiter{}
			for _, e := range tc.placed {
				id, _ := decodeRequestID(e.Data)
				waiters[id] = w.register(id, &pb.InternalRaftRequest{})
			}
			unplaced := w.register(55, &pb.InternalRaftRequest{})
			w.place(tc.placed)
			for _, e := range tc.committed {
				if id, _ := decodeRequestID(e.Data); waiters[id] != nil && e.Index == waiters[id].index {
					w.take(id) // answered by the apply
				}
			}
			w.settle(tc.committed)
			lost := map[uint64]bool{}
			for _, id := range tc.lost {
				lost[id] = true
			}
			for id, wt := range waiters {
				select {
				case r := <-wt.resc:
					if r != errEntryLost || !lost[id] {
						t.Errorf("proposal %x answered %v", id, r)
					}
				default:
					if lost[id] {
						t.Errorf("proposal %x not found lost", id)
					}
				}
			}
			select {
			case r := <-unplaced.resc:
				t.Errorf("unplaced proposal answered %v", r)
			default:
			}
			if above, _ := w.termAbove(tc.committed[len(tc.committed)-1].Term - 1); !above {
				t.Error("applied term not recorded")
			}
		})
	}
}

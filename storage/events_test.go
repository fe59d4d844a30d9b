package storage

import (
	"context"
	"testing"

	"github.com/golang/protobuf/proto"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Replay yields exactly what the write path produced, revision by
// revision, with previous versions, and refuses compacted starts.
func TestEventsReplayMatchesApply(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	defer s.Close()
	var live []Revision
	for _, req := range []*pb.InternalRaftRequest{
		put("a", "1"), put("b", "1"), put("a", "2"),
		{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{
			{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("c"), Value: []byte("1")}}},
			{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte("a")}}},
			{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("b"), Value: []byte("2")}}},
		}}},
		del("zzz"), put("a", "3"),
	} {
		_, revs, err := s.Apply([]Entry{{Index: s.AppliedIndex() + 1, Req: req}})
		if err != nil {
			t.Fatal(err)
		}
		live = append(live, revs...)
	}
	var replay []Revision
	if err := s.Events(context.Background(), 1, 0, true, func(r Revision) bool { replay = append(replay, r); return true }); err != nil {
		t.Fatal(err)
	}
	if len(replay) != len(live) {
		t.Fatalf("%d revisions replayed, %d applied", len(replay), len(live))
	}
	for i := range live {
		if replay[i].Rev != live[i].Rev || len(replay[i].Events) != len(live[i].Events) {
			t.Fatalf("revision %d: replay %v, live %v", i, replay[i], live[i])
		}
		for j, ev := range live[i].Events {
			if !proto.Equal(ev, replay[i].Events[j]) {
				t.Fatalf("rev %d event %d: replay %v, live %v", live[i].Rev, j, replay[i].Events[j], ev)
			}
		}
	}
	if live[3].Events[1].Type != mvccpb.DELETE || live[3].Events[1].PrevKv == nil {
		t.Fatalf("txn delete event: %v", live[3].Events[1])
	}
	// A range of revisions, stopping early.
	var got []int64
	s.Events(context.Background(), 3, 5, false, func(r Revision) bool { got = append(got, r.Rev); return len(got) < 2 })
	if len(got) != 2 || got[0] != 3 || got[1] != 4 {
		t.Fatalf("revisions 3..5 stopped after two: %v", got)
	}
	applyOne(t, s, &pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: 5}})
	if err := s.Events(context.Background(), 4, 0, false, func(Revision) bool { return true }); err != ErrCompacted {
		t.Fatalf("replay from below the compaction point: %v", err)
	}
}

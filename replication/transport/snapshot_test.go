package transport

import (
	"context"
	"crypto/sha256"
	"io"
	"slices"
	"testing"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

func snapMsg(from, to, index uint64) raftpb.Message {
	return raftpb.Message{
		Type: raftpb.MsgSnap, From: from, To: to, Term: 2,
		Snapshot: &raftpb.Snapshot{Metadata: raftpb.SnapshotMetadata{
			Index: index, Term: 2, ConfState: raftpb.ConfState{Voters: []uint64{1, 2, 3}},
		}},
	}
}

func TestLargeSnapshotWhileHeartbeatsFlow(t *testing.T) {
	const size = 20<<20 + 12345 // not a whole number of chunks
	a := newMember(t, 1, memberOpts{snapSize: size})
	b := newMember(t, 2, memberOpts{})
	halfway, proceed := make(chan struct{}), make(chan struct{})
	var receivedBeforeProcess bool
	b.snaps.receive = func(ctx context.Context, m raftpb.Message, data io.Reader) error {
		h := sha256.New()
		if _, err := io.CopyN(h, data, size/2); err != nil {
			return err
		}
		close(halfway)
		<-proceed // the transfer stays in flight until heartbeats have passed it
		if _, err := io.Copy(h, data); err != nil {
			return err
		}
		b.snaps.record(m.Snapshot.Metadata.Index, h)
		return nil
	}
	b.raft.onProcess = func(ctx context.Context, m raftpb.Message) error {
		if m.Type == raftpb.MsgSnap {
			_, receivedBeforeProcess = b.snaps.digest(m.Snapshot.Metadata.Index)
		}
		return nil
	}
	connectAll(a, b)
	waitActive(t, a, b)

	a.tr.Send([]raftpb.Message{snapMsg(a.id, b.id, 42)})
	<-halfway
	for i := uint64(1); i <= 20; i++ {
		a.tr.Send([]raftpb.Message{heartbeat(a.id, b.id, i)})
	}
	waitFor(t, "heartbeats during the snapshot transfer", func() bool {
		return b.raft.countFrom(a.id, raftpb.MsgHeartbeat) == 20
	})
	if got := a.raft.snapshotReports(b.id); len(got) != 0 {
		t.Fatalf("snapshot reported %v before the receiver finished", got)
	}
	close(proceed)

	waitFor(t, "ReportSnapshot", func() bool { return len(a.raft.snapshotReports(b.id)) == 1 })
	if got := a.raft.snapshotReports(b.id); got[0] != raft.SnapshotFinish {
		t.Fatalf("ReportSnapshot = %v, want SnapshotFinish", got)
	}
	want := sha256.Sum256(snapshotData(42, size))
	if got, ok := b.snaps.digest(42); !ok || got != want {
		t.Fatal("received snapshot data differs from the data sent")
	}
	msgs := b.raft.from(a.id)
	last := msgs[len(msgs)-1]
	if last.Type != raftpb.MsgSnap || last.Snapshot.Metadata.Index != 42 ||
		!slices.Equal(last.Snapshot.Metadata.ConfState.Voters, []uint64{1, 2, 3}) {
		t.Fatalf("raft got %+v, want the MsgSnap", last)
	}
	if !receivedBeforeProcess {
		t.Error("Process(MsgSnap) ran before Snapshots.Receive finished")
	}
}

func TestSnapshotFailureReported(t *testing.T) {
	cases := []struct {
		name  string
		setup func(a, b *member)
		to    uint64
	}{
		{"receiver fails", func(a, b *member) {
			b.snaps.receive = func(context.Context, raftpb.Message, io.Reader) error { return errFake }
		}, 2},
		{"receiver leaves data unread", func(a, b *member) {
			b.snaps.receive = func(_ context.Context, _ raftpb.Message, data io.Reader) error {
				_, err := data.Read(make([]byte, 10))
				return err
			}
		}, 2},
		{"raft refuses the message", func(a, b *member) {
			b.raft.onProcess = func(_ context.Context, m raftpb.Message) error {
				if m.Type == raftpb.MsgSnap {
					return errFake
				}
				return nil
			}
		}, 2},
		{"sender cannot open the data", func(a, b *member) { a.snaps.openErr = errFake }, 2},
		{"unknown peer", func(a, b *member) {}, 7},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := newMember(t, 1, memberOpts{snapSize: 3 << 20})
			b := newMember(t, 2, memberOpts{})
			tc.setup(a, b)
			connectAll(a, b)
			waitActive(t, a, b)
			a.tr.Send([]raftpb.Message{snapMsg(a.id, tc.to, 9)})
			waitFor(t, "ReportSnapshot", func() bool { return len(a.raft.snapshotReports(tc.to)) == 1 })
			if got := a.raft.snapshotReports(tc.to); got[0] != raft.SnapshotFailure {
				t.Fatalf("ReportSnapshot = %v, want SnapshotFailure", got)
			}
			if n := b.raft.countFrom(a.id, raftpb.MsgSnap); n != 0 {
				t.Errorf("raft processed a MsgSnap whose data failed")
			}
			// The message stream is unaffected.
			a.tr.Send([]raftpb.Message{heartbeat(a.id, b.id, 1)})
			waitFor(t, "heartbeat after the failed snapshot", func() bool { return b.raft.countFrom(a.id, raftpb.MsgHeartbeat) == 1 })
		})
	}
}

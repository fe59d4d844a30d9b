package transport

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestMessagesDeliveredInOrderBetweenAllPairs(t *testing.T) {
	ms := []*member{newMember(t, 1, memberOpts{}), newMember(t, 2, memberOpts{}), newMember(t, 3, memberOpts{})}
	connectAll(ms...)
	for _, a := range ms {
		for _, b := range ms {
			if a != b {
				waitActive(t, a, b)
			}
		}
	}
	const n = 3000
	var wg sync.WaitGroup
	for _, a := range ms {
		wg.Add(1)
		go func() { // all senders at once, in Send calls of varying size
			defer wg.Done()
			for i := uint64(1); i <= n; {
				var batch []raftpb.Message
				for k := 0; k < int(i%7)+1 && i <= n; k++ {
					for _, b := range ms {
						if b != a {
							batch = append(batch, app(a.id, b.id, i, []byte(fmt.Sprintf("entry %d", i))))
						}
					}
					i++
				}
				a.tr.Send(batch)
				if i%500 == 0 {
					time.Sleep(time.Millisecond) // stay well inside the queue bound
				}
			}
		}()
	}
	wg.Wait()
	for _, b := range ms {
		for _, a := range ms {
			if a == b {
				continue
			}
			waitFor(t, fmt.Sprintf("%d messages %d→%d", n, a.id, b.id), func() bool { return len(b.raft.from(a.id)) >= n })
			got := b.raft.from(a.id)
			if len(got) != n {
				t.Fatalf("%d→%d: got %d messages, want %d", a.id, b.id, len(got), n)
			}
			for i, m := range got {
				want := uint64(i + 1)
				if m.Index != want || m.To != b.id || m.Type != raftpb.MsgApp ||
					!bytes.Equal(m.Entries[0].Data, []byte(fmt.Sprintf("entry %d", want))) {
					t.Fatalf("%d→%d: message %d is %+v, want index %d", a.id, b.id, i, m, want)
				}
			}
		}
	}
	for _, a := range ms {
		for _, b := range ms {
			if n := a.raft.unreachableCount(b.id); a != b && n != 0 {
				t.Errorf("member %d reported %d unreachable %d times on a healthy cluster", a.id, b.id, n)
			}
		}
	}
}

func TestPeerDownReportsUnreachableAndRecovers(t *testing.T) {
	a, b := newMember(t, 1, memberOpts{}), newMember(t, 2, memberOpts{})
	connectAll(a, b)
	waitActive(t, a, b)
	since := a.tr.ActiveSince(b.id)

	b.stopServer()
	waitFor(t, "stream to the stopped peer to drop", func() bool { return a.tr.ActiveSince(b.id).IsZero() })
	for i := uint64(1); a.raft.unreachableCount(b.id) == 0; i++ {
		if i > 1000 {
			t.Fatal("no ReportUnreachable for a stopped peer")
		}
		a.tr.Send([]raftpb.Message{heartbeat(a.id, b.id, i)})
		time.Sleep(5 * time.Millisecond)
	}

	b.start(t, b.addr)
	before := len(b.raft.from(a.id))
	index := uint64(1000)
	waitFor(t, "delivery after the peer came back", func() bool {
		index++
		a.tr.Send([]raftpb.Message{heartbeat(a.id, b.id, index)})
		return len(b.raft.from(a.id)) > before
	})
	if s := a.tr.ActiveSince(b.id); !s.After(since) {
		t.Errorf("ActiveSince after reconnecting = %v, want after %v", s, since)
	}
}

func TestQueueFullDropsAndReportsUnreachable(t *testing.T) {
	a, b := newMember(t, 1, memberOpts{}), newMember(t, 2, memberOpts{})
	release := make(chan struct{})
	b.raft.onProcess = func(ctx context.Context, m raftpb.Message) error {
		select { // hold the receiver so the sender's queue fills
		case <-release:
		case <-ctx.Done():
		}
		return nil
	}
	connectAll(a, b)
	waitActive(t, a, b)
	payload := bytes.Repeat([]byte("x"), 1024)
	for i := uint64(1); i <= 20000 && a.raft.unreachableCount(b.id) == 0; i++ {
		a.tr.Send([]raftpb.Message{app(a.id, b.id, i, payload)})
	}
	waitFor(t, "ReportUnreachable for a full queue", func() bool { return a.raft.unreachableCount(b.id) > 0 })
	close(release)
	got := b.raft.from(a.id)
	waitFor(t, "queued messages to drain", func() bool {
		got = b.raft.from(a.id)
		time.Sleep(50 * time.Millisecond)
		return len(b.raft.from(a.id)) == len(got)
	})
	for i := 1; i < len(got); i++ { // drops leave gaps but never reorder
		if got[i].Index <= got[i-1].Index {
			t.Fatalf("message %d has index %d after %d", i, got[i].Index, got[i-1].Index)
		}
	}
}

func TestUnknownPeerDropsAndReportsUnreachable(t *testing.T) {
	a := newMember(t, 1, memberOpts{})
	a.tr.Send([]raftpb.Message{heartbeat(1, 9, 1)})
	waitFor(t, "ReportUnreachable(9)", func() bool { return a.raft.unreachableCount(9) == 1 })
	if !a.tr.ActiveSince(9).IsZero() {
		t.Error("ActiveSince of an unknown peer is not zero")
	}
}

func TestClusterIDMismatchRejected(t *testing.T) {
	a := newMember(t, 1, memberOpts{cluster: 0xaaa})
	d := newMember(t, 2, memberOpts{cluster: 0xbbb})
	a.tr.AddPeer(d.id, []string{d.url()})
	d.tr.Handle("echo", func(ctx context.Context, req []byte) ([]byte, error) { return req, nil })

	waitFor(t, "ReportUnreachable for the foreign member", func() bool {
		a.tr.Send([]raftpb.Message{heartbeat(a.id, d.id, 1)})
		time.Sleep(10 * time.Millisecond)
		return a.raft.unreachableCount(d.id) > 0
	})
	if !a.tr.ActiveSince(d.id).IsZero() {
		t.Error("a stream to another cluster counts as active")
	}
	if got := d.raft.from(a.id); len(got) != 0 {
		t.Errorf("member of another cluster processed %d messages", len(got))
	}
	_, err := a.tr.Call(context.Background(), d.id, "echo", []byte("hi"))
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "cluster ID mismatch") {
		t.Errorf("Call across clusters: %v, want FailedPrecondition cluster ID mismatch", err)
	}
}

func TestMemberIDMismatchRejected(t *testing.T) {
	a, b := newMember(t, 1, memberOpts{}), newMember(t, 2, memberOpts{})
	a.tr.AddPeer(3, []string{b.url()}) // member 3's URL now serves member 2
	waitFor(t, "ReportUnreachable(3)", func() bool {
		a.tr.Send([]raftpb.Message{heartbeat(a.id, 3, 1)})
		time.Sleep(10 * time.Millisecond)
		return a.raft.unreachableCount(3) > 0
	})
	if got := b.raft.from(a.id); len(got) != 0 {
		t.Errorf("member 2 processed %d messages addressed to member 3", len(got))
	}
}

func TestMessagesFromRemovedMemberStillProcessed(t *testing.T) {
	a, b := newMember(t, 1, memberOpts{}), newMember(t, 2, memberOpts{})
	a.tr.AddPeer(b.id, []string{b.url()}) // b does not know a
	waitActive(t, a, b)
	a.tr.Send([]raftpb.Message{heartbeat(a.id, b.id, 7)})
	waitFor(t, "message from a non-peer", func() bool { return len(b.raft.from(a.id)) == 1 })
}

func TestRemovePeerStopsSending(t *testing.T) {
	a, b := newMember(t, 1, memberOpts{}), newMember(t, 2, memberOpts{})
	connectAll(a, b)
	waitActive(t, a, b)
	a.tr.Send([]raftpb.Message{heartbeat(a.id, b.id, 1)})
	waitFor(t, "first heartbeat", func() bool { return len(b.raft.from(a.id)) == 1 })

	a.tr.RemovePeer(b.id)
	if !a.tr.ActiveSince(b.id).IsZero() {
		t.Error("ActiveSince of a removed peer is not zero")
	}
	a.tr.Send([]raftpb.Message{heartbeat(a.id, b.id, 2), heartbeat(a.id, b.id, 3)})
	waitFor(t, "ReportUnreachable for the removed peer", func() bool { return a.raft.unreachableCount(b.id) > 0 })
	time.Sleep(200 * time.Millisecond)
	if got := b.raft.from(a.id); len(got) != 1 {
		t.Errorf("removed peer received %d messages, want 1", len(got))
	}
	// b can still reach a: removal is one-way.
	waitActive(t, b, a)
	b.tr.Send([]raftpb.Message{heartbeat(b.id, a.id, 1)})
	waitFor(t, "message from the removed member", func() bool { return len(a.raft.from(b.id)) == 1 })

	a.tr.AddPeer(b.id, []string{b.url()}) // and it can come back
	waitActive(t, a, b)
	a.tr.Send([]raftpb.Message{heartbeat(a.id, b.id, 4)})
	waitFor(t, "message after re-adding", func() bool { return len(b.raft.from(a.id)) == 2 })
}

func TestUpdatePeerAndMultipleURLs(t *testing.T) {
	a, b := newMember(t, 1, memberOpts{}), newMember(t, 2, memberOpts{})
	dead := deadURL(t)
	a.tr.AddPeer(b.id, []string{dead, b.url()}) // the first URL refuses connections
	waitActive(t, a, b)
	a.tr.AddPeer(b.id, []string{dead}) // idempotent: keeps the working URLs
	a.tr.Send([]raftpb.Message{heartbeat(a.id, b.id, 1)})
	waitFor(t, "delivery via the second URL", func() bool { return len(b.raft.from(a.id)) == 1 })

	b.stopServer()
	b.start(t, "127.0.0.1:0") // b moves
	a.tr.UpdatePeer(b.id, []string{b.url()})
	waitFor(t, "delivery at the new URL", func() bool {
		a.tr.Send([]raftpb.Message{heartbeat(a.id, b.id, 2)})
		time.Sleep(10 * time.Millisecond)
		return len(b.raft.from(a.id)) >= 2
	})
}

func TestStopReturnsPromptlyWithStreamsOpen(t *testing.T) {
	a, b := newMember(t, 1, memberOpts{snapSize: 64 << 20}), newMember(t, 2, memberOpts{})
	blocked := make(chan struct{})
	b.snaps.receive = func(ctx context.Context, m raftpb.Message, data io.Reader) error {
		close(blocked)
		<-ctx.Done() // a snapshot transfer stays open until the end
		return ctx.Err()
	}
	connectAll(a, b)
	waitActive(t, a, b)
	waitActive(t, b, a)
	a.tr.Send([]raftpb.Message{{Type: raftpb.MsgSnap, From: a.id, To: b.id, Snapshot: &raftpb.Snapshot{Metadata: raftpb.SnapshotMetadata{Index: 5, Term: 1}}}})
	<-blocked

	for _, m := range []*member{a, b} {
		start := time.Now()
		m.tr.Stop()
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("member %d: Stop took %v", m.id, d)
		}
		// The receive side let go of its streams too: a graceful server stop completes.
		done := make(chan struct{})
		go func() { m.srv.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("member %d: GracefulStop blocked by peer streams after Stop", m.id)
		}
		<-m.srvDone
		m.srv = nil
	}
	if got := a.raft.snapshotReports(b.id); len(got) != 0 {
		t.Errorf("ReportSnapshot after Stop: %v", got)
	}
	a.tr.Send([]raftpb.Message{heartbeat(a.id, b.id, 1)}) // after Stop: dropped, no panic
	a.tr.Stop()                                           // idempotent
}

// deadURL returns an http URL on which nothing listens.
func deadURL(t *testing.T) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return "http://" + addr
}

package transport

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// fakeRaft records what the transport hands to raft.
type fakeRaft struct {
	mu          sync.Mutex
	received    map[uint64][]raftpb.Message // by sender, in arrival order
	unreachable map[uint64]int
	snapshots   map[uint64][]raft.SnapshotStatus
	// onProcess, if set, runs for every message before it is recorded.
	onProcess func(ctx context.Context, m raftpb.Message) error
}

func newFakeRaft() *fakeRaft {
	return &fakeRaft{
		received:    make(map[uint64][]raftpb.Message),
		unreachable: make(map[uint64]int),
		snapshots:   make(map[uint64][]raft.SnapshotStatus),
	}
}

func (r *fakeRaft) Process(ctx context.Context, m raftpb.Message) error {
	if r.onProcess != nil {
		if err := r.onProcess(ctx, m); err == errSkipRecord {
			return nil
		} else if err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.received[m.From] = append(r.received[m.From], m)
	return nil
}

func (r *fakeRaft) ReportUnreachable(id uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unreachable[id]++
}

func (r *fakeRaft) ReportSnapshot(id uint64, s raft.SnapshotStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.snapshots[id] = append(r.snapshots[id], s)
}

func (r *fakeRaft) from(id uint64) []raftpb.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]raftpb.Message(nil), r.received[id]...)
}

func (r *fakeRaft) countFrom(id uint64, typ raftpb.MessageType) int {
	n := 0
	for _, m := range r.from(id) {
		if m.Type == typ {
			n++
		}
	}
	return n
}

func (r *fakeRaft) unreachableCount(id uint64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.unreachable[id]
}

func (r *fakeRaft) snapshotReports(id uint64) []raft.SnapshotStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]raft.SnapshotStatus(nil), r.snapshots[id]...)
}

// fakeSnapshots serves snapshot data derived from the snapshot index and
// keeps the digest of what it received.
type fakeSnapshots struct {
	size    int   // bytes Open serves
	openErr error // returned by Open if set

	mu       sync.Mutex
	received map[uint64][32]byte // snapshot index → sha256 of the data
	// receive, if set, replaces reading the data in Receive.
	receive func(ctx context.Context, m raftpb.Message, data io.Reader) error
}

func snapshotData(index uint64, size int) []byte {
	block := make([]byte, 251) // a prime length, so no chunk boundary lines up with it
	for i := range block {
		block[i] = byte(uint64(i)*31 + index)
	}
	return bytes.Repeat(block, size/len(block)+1)[:size]
}

func (s *fakeSnapshots) Open(m raftpb.Message) (io.ReadCloser, error) {
	if s.openErr != nil {
		return nil, s.openErr
	}
	return io.NopCloser(bytes.NewReader(snapshotData(m.Snapshot.Metadata.Index, s.size))), nil
}

func (s *fakeSnapshots) Receive(ctx context.Context, m raftpb.Message, data io.Reader) error {
	if s.receive != nil {
		return s.receive(ctx, m, data)
	}
	h := sha256.New()
	if _, err := io.Copy(h, data); err != nil {
		return err
	}
	s.record(m.Snapshot.Metadata.Index, h)
	return nil
}

func (s *fakeSnapshots) record(index uint64, h interface{ Sum([]byte) []byte }) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.received == nil {
		s.received = make(map[uint64][32]byte)
	}
	s.received[index] = [32]byte(h.Sum(nil))
}

func (s *fakeSnapshots) digest(index uint64) ([32]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.received[index]
	return d, ok
}

// member is one transport with its own peer gRPC server on 127.0.0.1.
type member struct {
	id      uint64
	tr      *Transport
	raft    *fakeRaft
	snaps   *fakeSnapshots
	addr    string
	scheme  string
	srvTLS  *tls.Config
	srv     *grpc.Server
	srvDone chan struct{}
}

type memberOpts struct {
	cluster   uint64
	serverTLS *tls.Config // nil: plaintext
	clientTLS *tls.Config
	snapSize  int
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("TRANSPORT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func newMember(t testing.TB, id uint64, o memberOpts) *member {
	t.Helper()
	if o.cluster == 0 {
		o.cluster = 0xc1
	}
	m := &member{id: id, raft: newFakeRaft(), snaps: &fakeSnapshots{size: o.snapSize}, scheme: "http", srvTLS: o.serverTLS}
	if o.serverTLS != nil {
		m.scheme = "https"
	}
	m.tr = New(Config{
		ID:               id,
		ClusterID:        o.cluster,
		Raft:             m.raft,
		Snapshots:        m.snaps,
		ClientTLS:        o.clientTLS,
		Logger:           testLogger(t).With("member", id),
		DialTimeout:      2 * time.Second,
		RetryInterval:    20 * time.Millisecond,
		MaxRetryInterval: 200 * time.Millisecond,
	})
	m.start(t, "127.0.0.1:0")
	t.Cleanup(func() {
		m.tr.Stop()
		m.stopServer()
	})
	return m
}

func (m *member) url() string { return m.scheme + "://" + m.addr }

// start serves the member's transport on addr (again, after stopServer).
func (m *member) start(t testing.TB, addr string) {
	t.Helper()
	var lis net.Listener
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; {
		if lis, err = net.Listen("tcp", addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // the old listener's port may linger briefly
	}
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	m.addr = lis.Addr().String()
	opts := ServerOptions()
	if m.srvTLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(m.srvTLS)))
	}
	m.srv = grpc.NewServer(opts...)
	m.tr.Register(m.srv)
	m.srvDone = make(chan struct{})
	go func(srv *grpc.Server, done chan struct{}) {
		defer close(done)
		srv.Serve(lis)
	}(m.srv, m.srvDone)
}

func (m *member) stopServer() {
	if m.srv != nil {
		m.srv.Stop()
		<-m.srvDone
		m.srv = nil
	}
}

// connectAll makes every member a peer of every other.
func connectAll(ms ...*member) {
	for _, a := range ms {
		for _, b := range ms {
			if a != b {
				a.tr.AddPeer(b.id, []string{b.url()})
			}
		}
	}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitActive(t testing.TB, from, to *member) {
	t.Helper()
	waitFor(t, fmt.Sprintf("stream %d→%d", from.id, to.id), func() bool { return !from.tr.ActiveSince(to.id).IsZero() })
}

func app(from, to, index uint64, payload []byte) raftpb.Message {
	return raftpb.Message{
		Type: raftpb.MsgApp, From: from, To: to, Term: 1, Index: index, LogTerm: 1, Commit: index,
		Entries: []raftpb.Entry{{Term: 1, Index: index + 1, Type: raftpb.EntryNormal, Data: payload}},
	}
}

func heartbeat(from, to, commit uint64) raftpb.Message {
	return raftpb.Message{Type: raftpb.MsgHeartbeat, From: from, To: to, Term: 1, Commit: commit}
}

var (
	errFake       = errors.New("fake failure")
	errSkipRecord = errors.New("processed; do not record") // from onProcess
)

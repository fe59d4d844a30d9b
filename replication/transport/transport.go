// Package transport carries raft messages between the members of a sett
// cluster over gRPC, on the peer listener.
//
// Per peer there is one long-lived stream for ordinary messages (appends,
// heartbeats, votes), fed by a bounded queue so that Send never blocks;
// snapshots travel on their own stream and connection so that a large
// transfer never delays heartbeats; Call/Handle is a unary side channel
// for requests beyond raft. Every frame names its sender, its recipient and
// the cluster ID; frames from another cluster or for another member are
// refused with codes.FailedPrecondition.
package transport

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// Raft is the member's raft node as the transport sees it.
type Raft interface {
	// Process steps a received message. It must return once ctx is done.
	// Messages from one peer arrive in the order that peer sent them.
	Process(ctx context.Context, m raftpb.Message) error
	// ReportUnreachable says messages to id were dropped or could not be
	// delivered. It is never called from within Send.
	ReportUnreachable(id uint64)
	// ReportSnapshot says how sending a MsgSnap to id ended.
	ReportSnapshot(id uint64, status raft.SnapshotStatus)
}

// Snapshots moves snapshot data: the raft message says what
// (m.Snapshot.Metadata), the store says the bytes.
type Snapshots interface {
	// Open returns the data to send along with a MsgSnap (the sender closes it).
	Open(m raftpb.Message) (io.ReadCloser, error)
	// Receive consumes the data of an incoming MsgSnap completely and
	// durably (it is called before Process(m)). It must return once ctx is
	// done.
	Receive(ctx context.Context, m raftpb.Message, data io.Reader) error
}

// Config configures a Transport. Zero durations and sizes take defaults.
type Config struct {
	ID        uint64 // this member
	ClusterID uint64 // messages from another cluster ID are rejected (codes.FailedPrecondition)
	Raft      Raft
	Snapshots Snapshots
	ClientTLS *tls.Config // nil: plain; used to dial peers (https peer URLs)
	Logger    *slog.Logger

	// DialTimeout bounds connecting to a peer and opening a stream (default 5s).
	DialTimeout time.Duration
	// RetryInterval is the first wait after a failed connection; it doubles
	// up to MaxRetryInterval (defaults 100ms and 1s).
	RetryInterval    time.Duration
	MaxRetryInterval time.Duration
	// QueueSize is how many messages wait per peer before new ones are
	// dropped (default 4096).
	QueueSize int
	// KeepaliveTime is how long a connection may be silent before it is
	// probed; a probe unanswered for as long again closes it (default 10s).
	KeepaliveTime time.Duration
}

func (c *Config) setDefaults() {
	if c.DialTimeout <= 0 {
		c.DialTimeout = 5 * time.Second
	}
	if c.RetryInterval <= 0 {
		c.RetryInterval = 100 * time.Millisecond
	}
	if c.MaxRetryInterval < c.RetryInterval {
		c.MaxRetryInterval = max(time.Second, c.RetryInterval)
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 4096
	}
	if c.KeepaliveTime <= 0 {
		c.KeepaliveTime = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Transport sends and receives one member's raft traffic.
type Transport struct {
	cfg Config
	log *slog.Logger

	// ctx is cancelled by Stop; every goroutine of the transport ends with it.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.RWMutex
	stopped bool // set under mu by Stop; no goroutine is added to wg after
	peers   map[uint64]*peer
	wg      sync.WaitGroup // peer loops, snapshot transfers, receive loops, reporter

	handlersMu sync.RWMutex
	handlers   map[string]func(ctx context.Context, req []byte) ([]byte, error)

	unreachable reporter
}

// New returns a transport with no peers. Register it on the peer gRPC
// server and add peers before sending.
func New(cfg Config) *Transport {
	cfg.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	t := &Transport{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "peer-transport", "local-member-id", idString(cfg.ID)),
		ctx:      ctx,
		cancel:   cancel,
		peers:    make(map[uint64]*peer),
		handlers: make(map[string]func(context.Context, []byte) ([]byte, error)),
		unreachable: reporter{
			pending: make(map[uint64]struct{}),
			wake:    make(chan struct{}, 1),
		},
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		t.unreachable.run(ctx, func(id uint64) {
			if cfg.Raft != nil { // nil only for a transport that merely calls (Discover)
				cfg.Raft.ReportUnreachable(id)
			}
		})
	}()
	return t
}

// goTracked runs fn on a goroutine Stop waits for; it reports false, and
// does not run fn, once Stop has begun.
func (t *Transport) goTracked(fn func()) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.stopped {
		return false
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		fn()
	}()
	return true
}

// AddPeer starts sending to member id at urls. It does nothing if id is
// already a peer (use UpdatePeer to change its URLs) or is this member.
func (t *Transport) AddPeer(id uint64, urls []string) {
	if id == t.cfg.ID {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped || t.peers[id] != nil {
		return
	}
	p := newPeer(t, id, urls)
	t.peers[id] = p
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		p.run()
	}()
	t.log.Info("added peer", "remote-peer-id", idString(id), "remote-peer-urls", urls)
}

// UpdatePeer replaces the URLs of peer id; its stream reconnects to them.
// It does nothing for an unknown peer.
func (t *Transport) UpdatePeer(id uint64, urls []string) {
	if p := t.peer(id); p != nil {
		p.setURLs(urls)
		t.log.Info("updated peer", "remote-peer-id", idString(id), "remote-peer-urls", urls)
	}
}

// RemovePeer stops sending to id: its stream, queue and snapshot
// transfers end. Messages from id are still received and processed.
func (t *Transport) RemovePeer(id uint64) {
	t.mu.Lock()
	p := t.peers[id]
	delete(t.peers, id)
	t.mu.Unlock()
	if p != nil {
		p.cancel()
		t.log.Info("removed peer", "remote-peer-id", idString(id))
	}
}

func (t *Transport) peer(id uint64) *peer {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.peers[id]
}

// Send queues msgs for their recipients and returns at once; it never
// blocks on the network. Messages to one peer leave in the order given.
// A message for an unknown peer, or one that finds its peer's queue full
// or its stream down, is dropped and the peer reported unreachable. A
// MsgSnap is sent on its own stream and ends in ReportSnapshot.
func (t *Transport) Send(msgs []raftpb.Message) {
	for i := range msgs {
		m := msgs[i]
		if m.To == 0 || m.To == t.cfg.ID {
			continue
		}
		p := t.peer(m.To)
		if m.Type == raftpb.MsgSnap {
			t.sendSnapshot(p, m)
			continue
		}
		if p == nil {
			t.unreachable.report(m.To)
			continue
		}
		select {
		case p.queue <- m:
		default:
			t.unreachable.report(m.To)
		}
	}
}

// ActiveSince returns when the stream to id last became healthy, or the
// zero time if it is not connected now.
func (t *Transport) ActiveSince(id uint64) time.Time {
	p := t.peer(id)
	if p == nil {
		return time.Time{}
	}
	if n := p.activeSince.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// Stop closes every stream and connection of the transport and waits for
// its goroutines. After Stop returns, Raft and Snapshots are not called
// again and incoming streams are refused. The gRPC server is the caller's
// to stop.
func (t *Transport) Stop() {
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		return
	}
	t.stopped = true
	peers := t.peers
	t.peers = make(map[uint64]*peer)
	t.mu.Unlock()
	t.cancel()
	for _, p := range peers {
		p.cancel()
	}
	t.wg.Wait()
}

// reporter calls ReportUnreachable from its own goroutine, once per peer
// however many drops happened since the last call, so that reporting
// never blocks a sender and a burst of drops costs one report.
type reporter struct {
	mu      sync.Mutex
	pending map[uint64]struct{}
	wake    chan struct{}
}

func (r *reporter) report(id uint64) {
	r.mu.Lock()
	r.pending[id] = struct{}{}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *reporter) run(ctx context.Context, fn func(uint64)) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		}
		r.mu.Lock()
		ids := make([]uint64, 0, len(r.pending))
		for id := range r.pending {
			ids = append(ids, id)
		}
		clear(r.pending)
		r.mu.Unlock()
		for _, id := range ids {
			if ctx.Err() != nil {
				return
			}
			fn(id)
		}
	}
}

func idString(id uint64) string { return strconv.FormatUint(id, 16) }

package replication

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3"

	"github.com/sett-dev/sett/storage"
)

// Log entry data: one tag byte, the request ID (8 bytes, big endian), then
// the request. The ID lets the proposing member match the applied entry
// to its waiting proposer (and reuse the request it already decoded).
const entryRequest = 'q'

func encodeRequest(id uint64, req *pb.InternalRaftRequest) ([]byte, error) {
	b := make([]byte, 9, 9+req.Size())
	b[0] = entryRequest
	binary.BigEndian.PutUint64(b[1:], id)
	n, err := req.MarshalTo(b[9:cap(b)])
	if err != nil {
		return nil, err
	}
	return b[:9+n], nil
}

func decodeRequestID(data []byte) (uint64, bool) {
	if len(data) < 9 || data[0] != entryRequest {
		return 0, false
	}
	return binary.BigEndian.Uint64(data[1:9]), true
}

// requestTimeout bounds a proposal as etcd's request timeout does: 5 s plus
// two election timeouts.
func (n *Node) requestTimeout() time.Duration {
	return 5*time.Second + 2*time.Duration(n.cfg.ElectionTicks)*n.cfg.TickInterval
}

// Propose submits req and waits until this member has applied it. req's
// header ID must be unique in the cluster.
func (n *Node) Propose(ctx context.Context, req *pb.InternalRaftRequest) (storage.Result, error) {
	if req.Header == nil {
		req.Header = &pb.RequestHeader{ID: n.nextConfID()}
	}
	id := req.Header.ID
	data, err := encodeRequest(id, req)
	if err != nil {
		return storage.Result{}, err
	}
	w := n.waits.register(id, req)
	leaderChanged := n.leaderChange()
	pctx, cancel := context.WithTimeout(ctx, n.requestTimeout())
	defer cancel()
	if err := n.raft.Propose(pctx, data); err != nil {
		n.waits.cancel(id)
		return storage.Result{}, n.proposeError(ctx, pctx, err, leaderChanged)
	}
	select {
	case r := <-w.resc:
		return r.(storage.Result), nil
	case <-pctx.Done():
		n.waits.cancel(id)
		return storage.Result{}, n.proposeError(ctx, pctx, pctx.Err(), leaderChanged)
	case <-n.donec:
		return storage.Result{}, ErrStopped
	}
}

// proposeError maps a failed or timed-out proposal to etcd's error.
func (n *Node) proposeError(parent, pctx context.Context, err error, leaderChanged <-chan struct{}) error {
	if parent.Err() != nil {
		return parent.Err()
	}
	select {
	case <-n.stopc:
		return ErrStopped
	default:
	}
	if errors.Is(err, raft.ErrStopped) {
		return ErrStopped
	}
	if errors.Is(err, raft.ErrProposalDropped) {
		// No leader to forward to, or a leadership transfer in progress.
		return ErrNoLeader
	}
	if pctx.Err() != nil {
		select {
		case <-leaderChanged:
			return ErrTimeoutLeaderFail
		default:
		}
		return ErrTimeout
	}
	return err
}

// waitRegistry holds the proposers waiting for their entries.
type waitRegistry struct {
	mu sync.Mutex
	m  map[uint64]*waiter
}

type waiter struct {
	req  *pb.InternalRaftRequest // nil for configuration changes
	resc chan any
}

func (w *waitRegistry) init() { w.m = map[uint64]*waiter{} }

func (w *waitRegistry) register(id uint64, req *pb.InternalRaftRequest) *waiter {
	wt := &waiter{req: req, resc: make(chan any, 1)}
	w.mu.Lock()
	w.m[id] = wt
	w.mu.Unlock()
	return wt
}

func (w *waitRegistry) cancel(id uint64) {
	w.mu.Lock()
	delete(w.m, id)
	w.mu.Unlock()
}

// take removes and returns id's waiter, nil if nobody waits.
func (w *waitRegistry) take(id uint64) *waiter {
	w.mu.Lock()
	wt := w.m[id]
	delete(w.m, id)
	w.mu.Unlock()
	return wt
}

// peek returns id's waiter without removing it.
func (w *waitRegistry) peek(id uint64) *waiter {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.m[id]
}

func (w *waitRegistry) failAll(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for id, wt := range w.m {
		if wt.req != nil {
			wt.resc <- storage.Result{Err: err}
		} else {
			wt.resc <- err
		}
		delete(w.m, id)
	}
}

// appliedWaiter lets readers wait until an index is applied.
type appliedWaiter struct {
	mu    sync.Mutex
	index uint64
	waits map[uint64][]chan struct{}
}

func (a *appliedWaiter) init() { a.waits = map[uint64][]chan struct{}{} }

func (a *appliedWaiter) advance(index uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if index <= a.index {
		return
	}
	a.index = index
	for i, chs := range a.waits {
		if i <= index {
			for _, ch := range chs {
				close(ch)
			}
			delete(a.waits, i)
		}
	}
}

// wait returns a channel closed once index is applied.
func (a *appliedWaiter) wait(index uint64) <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	ch := make(chan struct{})
	if index <= a.index {
		close(ch)
		return ch
	}
	a.waits[index] = append(a.waits[index], ch)
	return ch
}

package replication

import (
	"context"
	"encoding/binary"
	"sync"
	"time"

	"go.etcd.io/raft/v3"
)

// ReadBarrier returns once this member has applied everything committed
// before the call: a read served after it is linearizable (raft's
// ReadIndex, batched over concurrent readers). On a one-voter cluster the
// leader has applied every write it acknowledged, so it passes at once.
func (n *Node) ReadBarrier(ctx context.Context) error {
	if n.singleVoter.Load() && n.IsLeader() {
		return nil
	}
	return n.reads.wait(ctx)
}

// readIndexer runs one ReadIndex round at a time for every reader that
// arrived before it started.
type readIndexer struct {
	n     *Node
	mu    sync.Mutex
	queue []chan error
	wake  chan struct{}
	// states carries the read states of the Ready loop to the round.
	states chan raft.ReadState
	seq    uint64
}

func newReadIndexer(n *Node) *readIndexer {
	return &readIndexer{n: n, wake: make(chan struct{}, 1), states: make(chan raft.ReadState, 64)}
}

func (r *readIndexer) wait(ctx context.Context) error {
	ch := make(chan error, 1)
	r.mu.Lock()
	r.queue = append(r.queue, ch)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
	ctx, cancel := context.WithTimeout(ctx, r.n.requestTimeout())
	defer cancel()
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ErrTimeout
	case <-r.n.stopc:
		return ErrStopped
	}
}

// deliver hands the Ready loop's read states to the round (never blocks).
func (r *readIndexer) deliver(states []raft.ReadState) {
	for _, s := range states {
		select {
		case r.states <- s:
		default:
		}
	}
}

func (r *readIndexer) run() {
	for {
		select {
		case <-r.wake:
		case <-r.n.stopc:
			return
		}
		r.mu.Lock()
		batch := r.queue
		r.queue = nil
		r.mu.Unlock()
		if len(batch) == 0 {
			continue
		}
		err := r.round()
		for _, ch := range batch {
			ch <- err
		}
	}
}

// round asks raft for the commit index as of now (retrying while no answer
// comes, as leadership may be changing) and waits until it is applied.
func (r *readIndexer) round() error {
	r.seq++
	rctx := readContext(r.n.id, r.seq)
	deadline := time.NewTimer(r.n.requestTimeout())
	defer deadline.Stop()
	for {
		if r.n.Leader() == 0 {
			select {
			case <-r.n.leaderChange():
				continue
			case <-deadline.C:
				return ErrNoLeader
			case <-r.n.stopc:
				return ErrStopped
			}
		}
		if err := r.n.raft.ReadIndex(context.Background(), rctx); err != nil {
			return ErrStopped
		}
		retry := time.NewTimer(500 * time.Millisecond)
		index, ok, err := r.await(rctx, retry.C, deadline.C)
		retry.Stop()
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		select {
		case <-r.n.applied.wait(index):
			return nil
		case <-deadline.C:
			return ErrTimeout
		case <-r.n.stopc:
			return ErrStopped
		}
	}
}

func (r *readIndexer) await(rctx []byte, retry, deadline <-chan time.Time) (uint64, bool, error) {
	for {
		select {
		case s := <-r.states:
			if string(s.RequestCtx) == string(rctx) {
				return s.Index, true, nil
			}
		case <-retry:
			return 0, false, nil
		case <-deadline:
			return 0, false, ErrTimeout
		case <-r.n.stopc:
			return 0, false, ErrStopped
		}
	}
}

// readContext is the context of this member's seq-th read index round:
// unique in the cluster, as the leader ignores a read index request whose
// context it already has pending (another member's round would then wait
// for a retry).
func readContext(member, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, member), seq)
}

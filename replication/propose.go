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
//
// A proposal raft drops does not wait out the request timeout: one raft
// refused here (an election or a leadership transfer in progress) is in no
// log and is proposed again once a leader can take it; one whose entry
// another entry displaced is proposed again as soon as that is committed
// (see errEntryLost); one lost with a leader that failed before this
// member's log received it fails with etcd's "request timed out, possibly
// due to previous leader failure" once the next leader committed an entry,
// instead of after the timeout.
func (n *Node) Propose(ctx context.Context, req *pb.InternalRaftRequest) (storage.Result, error) {
	if req.Header == nil {
		req.Header = &pb.RequestHeader{ID: n.nextConfID()}
	}
	id := req.Header.ID
	data, err := encodeRequest(id, req)
	if err != nil {
		return storage.Result{}, err
	}
	pctx, cancel := context.WithTimeout(ctx, n.requestTimeout())
	defer cancel()
	for {
		res, err := n.proposeOnce(ctx, pctx, id, req, data)
		if !errors.Is(err, errRepropose) {
			return res, err
		}
		n.reproposals.Add(1)
	}
}

// Reproposals counts the proposals proposed again after raft dropped
// them.
func (n *Node) Reproposals() int64 { return n.reproposals.Load() }

// errRepropose tells Propose that its entry is in no log that can commit
// it, so that proposing it again cannot apply it twice.
var errRepropose = errors.New("replication: propose again")

// proposeOnce proposes data once and waits for its fate.
func (n *Node) proposeOnce(ctx, pctx context.Context, id uint64, req *pb.InternalRaftRequest, data []byte) (storage.Result, error) {
	w := n.waits.register(id, req)
	leaderChanged := n.leaderChange()
	term := n.term.Load()
	if err := n.raft.Propose(pctx, data); err != nil {
		n.waits.cancel(id)
		if errors.Is(err, raft.ErrProposalDropped) && pctx.Err() == nil {
			// Refused before any log took it: try again at the next change
			// of leader or tick, while the timeout allows.
			select {
			case <-leaderChanged:
			case <-time.After(n.cfg.TickInterval):
			case <-pctx.Done():
				return storage.Result{}, n.proposeError(ctx, pctx, pctx.Err(), leaderChanged)
			case <-n.stopc:
				return storage.Result{}, ErrStopped
			}
			return storage.Result{}, errRepropose
		}
		return storage.Result{}, n.proposeError(ctx, pctx, err, leaderChanged)
	}
	// After a change of leader: termc fires once an entry of a later term
	// is applied, then grace gives this member's log a few heartbeats to
	// receive the entry if the new leader holds it.
	var termc <-chan struct{}
	var grace <-chan time.Time
	changed := leaderChanged
	for {
		select {
		case r := <-w.resc:
			if r == errEntryLost {
				return storage.Result{}, errRepropose
			}
			return r.(storage.Result), nil
		case <-changed:
			changed = nil
			_, termc = n.waits.termAbove(term)
		case <-termc:
			var above bool
			if above, termc = n.waits.termAbove(term); above {
				termc = nil
				grace = time.After(2 * n.cfg.TickInterval)
			}
		case <-grace:
			grace = nil
			if n.waits.placed(id) {
				// In this member's log: committed entries decide.
				continue
			}
			n.waits.cancel(id)
			select {
			case r := <-w.resc:
				if r != errEntryLost {
					return r.(storage.Result), nil
				}
			default:
			}
			return storage.Result{}, ErrTimeoutLeaderFail
		case <-pctx.Done():
			n.waits.cancel(id)
			return storage.Result{}, n.proposeError(ctx, pctx, pctx.Err(), leaderChanged)
		case <-n.donec:
			return storage.Result{}, ErrStopped
		}
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
	// appliedTerm is the term of the newest entry applied; termc is closed
	// and replaced when it grows.
	appliedTerm uint64
	termc       chan struct{}
	// byIndex maps the log index of each placed proposal to its ID.
	byIndex map[uint64]uint64
}

type waiter struct {
	req  *pb.InternalRaftRequest // nil for configuration changes
	resc chan any
	// index and term are where this member's log holds the entry, 0 until
	// it does (see place).
	index, term uint64
}

func (w *waitRegistry) init() {
	w.m = map[uint64]*waiter{}
	w.termc = make(chan struct{})
	w.byIndex = map[uint64]uint64{}
}

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

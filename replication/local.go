// Package replication orders writes: commands are proposed, committed to a
// log, and applied to storage in log order by one applier. Local is the
// single-member log: the storage commit itself is the durable log record,
// and a batch of concurrent proposals shares one fsync (group commit).
package replication

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/sett-dev/sett/storage"
)

// ErrStopped answers proposals made after, or cut off by, Stop.
var ErrStopped = errors.New("etcdserver: server stopped")

// maxBatch bounds how many proposals one group commit takes.
const maxBatch = 1024

// ApplyObserver sees every committed revision, in order, after it is
// durable and before its proposers are answered.
type ApplyObserver func(revs []storage.Revision)

// Local is a one-member log in front of a Store.
type Local struct {
	store    *storage.Store
	log      *slog.Logger
	observer ApplyObserver

	// commitObserver, if set, gets each group commit's duration (apply,
	// write and fsync).
	commitObserver atomic.Pointer[func(time.Duration)]

	propc chan *proposal
	stopc chan struct{}
	donec chan struct{}
	once  sync.Once
}

type proposal struct {
	req  *pb.InternalRaftRequest
	resc chan storage.Result
}

// NewLocal starts the applier. observer may be nil.
func NewLocal(store *storage.Store, log *slog.Logger, observer ApplyObserver) (*Local, error) {
	// A restart is a new election: the term moves on, as etcd's does
	// (a fresh single member leads at term 2).
	term := store.Term() + 1
	if term < 2 {
		term = 2
	}
	if err := store.SetTerm(term); err != nil {
		return nil, err
	}
	l := &Local{
		store:    store,
		log:      log,
		observer: observer,
		propc:    make(chan *proposal, maxBatch),
		stopc:    make(chan struct{}),
		donec:    make(chan struct{}),
	}
	go l.run()
	return l, nil
}

// Propose submits req and waits until it is applied and durable.
func (l *Local) Propose(ctx context.Context, req *pb.InternalRaftRequest) (storage.Result, error) {
	p := &proposal{req: req, resc: make(chan storage.Result, 1)}
	select {
	case l.propc <- p:
	case <-ctx.Done():
		return storage.Result{}, ctx.Err()
	case <-l.stopc:
		return storage.Result{}, ErrStopped
	}
	select {
	case r := <-p.resc:
		return r, nil
	case <-ctx.Done():
		return storage.Result{}, ctx.Err()
	case <-l.donec:
		return storage.Result{}, ErrStopped
	}
}

// ObserveCommits reports every group commit's duration to fn.
func (l *Local) ObserveCommits(fn func(time.Duration)) { l.commitObserver.Store(&fn) }

// Term is the current term; a single member is always its leader.
func (l *Local) Term() uint64 { return l.store.Term() }

// Stop finishes the batch in progress and stops the applier.
func (l *Local) Stop() {
	l.once.Do(func() { close(l.stopc) })
	<-l.donec
}

func (l *Local) run() {
	defer close(l.donec)
	batch := make([]*proposal, 0, maxBatch)
	entries := make([]storage.Entry, 0, maxBatch)
	for {
		batch = batch[:0]
		select {
		case p := <-l.propc:
			batch = append(batch, p)
		case <-l.stopc:
			return
		}
	drain:
		for len(batch) < maxBatch {
			select {
			case p := <-l.propc:
				batch = append(batch, p)
			default:
				break drain
			}
		}
		entries = entries[:0]
		next := l.store.AppliedIndex()
		for _, p := range batch {
			next++
			entries = append(entries, storage.Entry{Index: next, Req: p.req})
		}
		start := time.Now()
		results, revs, err := l.store.Apply(entries)
		if fn := l.commitObserver.Load(); fn != nil && err == nil {
			(*fn)(time.Since(start))
		}
		if err != nil {
			// A storage failure leaves nothing applied; the server cannot
			// go on serving writes it cannot persist.
			l.log.Error("apply failed; stopping the write path", "err", err)
			for _, p := range batch {
				p.resc <- storage.Result{Err: err}
			}
			l.once.Do(func() { close(l.stopc) })
			return
		}
		if l.observer != nil && len(revs) > 0 {
			l.observer(revs)
		}
		for i, p := range batch {
			p.resc <- results[i]
		}
	}
}

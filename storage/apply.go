package storage

import (
	"context"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Entry is one command of the (replicated) log, in etcd's own envelope.
type Entry struct {
	Index uint64
	// Req is the command; nil with a nil Member is an entry that changes
	// nothing but the applied index (a new leader's empty entry).
	Req *pb.InternalRaftRequest
	// Member, if set, is a membership change (Req is then nil).
	Member *MemberChange
}

// Result is what applying one Entry produced: a response message
// (*pb.PutResponse, *pb.DeleteRangeResponse, *pb.TxnResponse,
// *pb.CompactionResponse, *pb.LeaseGrantResponse, *pb.LeaseRevokeResponse)
// or a command error, which is part of the deterministic outcome.
type Result struct {
	Resp any
	Err  error
	// Compacted is closed when a compaction this entry scheduled has
	// physically finished.
	Compacted <-chan struct{}
}

// Revision is one committed revision's events, in the order they happened.
type Revision struct {
	Rev    int64
	Events []*mvccpb.Event
}

// Apply applies entries in order as one atomic, durable Badger
// transaction and returns each entry's result and the revisions written.
// A returned error is a storage failure: nothing of the batch was applied.
func (s *Store) Apply(entries []Entry) ([]Result, []Revision, error) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	return s.applyLocked(entries)
}

func (s *Store) applyLocked(entries []Entry) ([]Result, []Revision, error) {
	if len(entries) == 0 {
		return nil, nil, nil
	}
	b := s.newBatch()
	defer func() { b.txn.Discard() }()
	for i, e := range entries {
		res, err := b.applyEntry(e)
		if errors.Is(err, badger.ErrTxnTooBig) {
			b.txn.Discard()
			if i == 0 {
				return s.applyAlone(entries)
			}
			return s.split(entries, i)
		}
		if err != nil {
			return nil, nil, err
		}
		b.results = append(b.results, res)
	}
	err := b.commit(entries[len(entries)-1].Index)
	if errors.Is(err, badger.ErrTxnTooBig) {
		if len(entries) == 1 {
			return s.applyAlone(entries)
		}
		return s.split(entries, len(entries)-1)
	}
	if err != nil {
		return nil, nil, err
	}
	return b.results, b.revs, nil
}

// split applies entries[:i] and entries[i:] as separate batches after
// entries[i] overflowed Badger's transaction limit.
func (s *Store) split(entries []Entry, i int) ([]Result, []Revision, error) {
	r1, v1, err := s.applyLocked(entries[:i])
	if err != nil {
		return nil, nil, err
	}
	r2, v2, err := s.applyLocked(entries[i:])
	if err != nil {
		return nil, nil, err
	}
	return append(r1, r2...), append(v1, v2...), nil
}

// applyAlone applies entries[0], too large for one Badger transaction, in
// chunks (see chunked.go), then the rest as usual.
func (s *Store) applyAlone(entries []Entry) ([]Result, []Revision, error) {
	r1, v1, err := s.applyChunked(entries[0])
	if err != nil || len(entries) == 1 {
		return r1, v1, err
	}
	r2, v2, err := s.applyLocked(entries[1:])
	if err != nil {
		return nil, nil, err
	}
	return append(r1, r2...), append(v1, v2...), nil
}

func (s *Store) newBatch() *batch {
	return &batch{
		s:       s,
		txn:     s.db.NewTransaction(true),
		rev:     s.rev.Load(),
		compact: s.compactRev.Load(),
		leases:  leaseView{base: s.leases, pending: map[int64]*int64{}},
	}
}

// batch accumulates consecutive commands in one Badger transaction.
type batch struct {
	s       *Store
	txn     *badger.Txn
	rev     int64
	compact int64
	leases  leaseView

	// chunked lets one revision span several Badger transactions.
	chunked bool
	// valueLog is set when a value long enough for Badger's value log was
	// written, which then needs syncing too.
	valueLog bool

	results     []Result
	revs        []Revision
	compactions []compactWaiter
}

func (b *batch) writer() *revWriter {
	return &revWriter{v: view{b.txn}, begin: b.rev, compact: b.compact, leases: b.leases, spill: b.spill,
		valueThreshold: b.s.valueThreshold, valueLog: &b.valueLog}
}

// finish seals w's revision: a command that changed nothing does not
// advance the revision.
func (b *batch) finish(w *revWriter) {
	if len(w.events) > 0 {
		b.rev++
		b.revs = append(b.revs, Revision{Rev: b.rev, Events: w.events})
	}
}

func (b *batch) applyEntry(e Entry) (Result, error) {
	switch {
	case e.Member != nil:
		return b.memberChange(e.Index, e.Member)
	case e.Req == nil:
		return Result{}, nil
	}
	return b.apply(e.Req)
}

// apply runs one command. Command errors go in the Result; the error return
// is for storage failures (including ErrTxnTooBig).
func (b *batch) apply(req *pb.InternalRaftRequest) (Result, error) {
	ctx := context.Background()
	if err := b.capped(req); err != nil {
		return Result{Err: err}, nil
	}
	cmdErr := func(resp any, err error) (Result, error) {
		if err == nil {
			return Result{Resp: resp}, nil
		}
		if isCommandError(err) {
			return Result{Err: err}, nil
		}
		return Result{}, err
	}
	switch {
	case req.Put != nil:
		if req.Put.Lease != 0 && !b.leases.exists(req.Put.Lease) {
			return Result{Err: ErrLeaseNotFound}, nil
		}
		w := b.writer()
		resp, err := w.put(ctx, req.Put)
		if err == nil {
			b.finish(w)
		}
		return cmdErr(resp, err)
	case req.DeleteRange != nil:
		w := b.writer()
		resp, err := w.deleteRange(ctx, req.DeleteRange)
		if err == nil {
			b.finish(w)
		}
		return cmdErr(resp, err)
	case req.Txn != nil:
		w := b.writer()
		resp, err := w.txn(ctx, req.Txn)
		if err == nil {
			b.finish(w)
		}
		return cmdErr(resp, err)
	case req.Compaction != nil:
		return b.compaction(req.Compaction)
	case req.LeaseGrant != nil:
		return b.leaseGrant(req.LeaseGrant)
	case req.LeaseRevoke != nil:
		return b.leaseRevoke(ctx, req.LeaseRevoke)
	case req.LeaseCheckpoint != nil:
		return b.leaseCheckpoint(req.LeaseCheckpoint)
	case req.Alarm != nil:
		return b.alarm(req.Alarm)
	case req.ClusterMemberAttrSet != nil:
		return b.memberAttrs(req.ClusterMemberAttrSet)
	case req.ClusterVersionSet != nil:
		return b.clusterVersion(req.ClusterVersionSet)
	case req.DowngradeInfoSet != nil, req.DowngradeVersionTest != nil:
		return Result{}, nil
	default:
		return Result{Err: fmt.Errorf("storage: unsupported command %v", req)}, nil
	}
}

func isCommandError(err error) bool {
	for _, e := range []error{ErrCompacted, ErrFutureRev, ErrKeyNotFound, ErrLeaseNotFound, ErrLeaseExists, ErrTooLarge, ErrNoSpace, ErrCorrupt} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func (b *batch) compaction(c *pb.CompactionRequest) (Result, error) {
	if c.Revision <= b.compact {
		return Result{Err: ErrCompacted}, nil
	}
	if c.Revision > b.rev {
		return Result{Err: ErrFutureRev}, nil
	}
	b.compact = c.Revision
	done := make(chan struct{})
	b.compactions = append(b.compactions, compactWaiter{rev: c.Revision, done: done})
	return Result{
		Resp:      &pb.CompactionResponse{Header: &pb.ResponseHeader{Revision: b.rev}},
		Compacted: done,
	}, nil
}

func (b *batch) leaseGrant(g *pb.LeaseGrantRequest) (Result, error) {
	if b.leases.exists(g.ID) {
		return Result{Err: ErrLeaseExists}, nil
	}
	ttl := g.TTL
	b.leases.pending[g.ID] = &ttl
	return Result{Resp: &pb.LeaseGrantResponse{
		Header: &pb.ResponseHeader{Revision: b.rev}, ID: g.ID, TTL: ttl,
	}}, nil
}

// leaseRevoke deletes every key attached to the lease in one revision, in
// key order, then the lease.
func (b *batch) leaseRevoke(ctx context.Context, r *pb.LeaseRevokeRequest) (Result, error) {
	if !b.leases.exists(r.ID) {
		return Result{Err: ErrLeaseNotFound}, nil
	}
	w := b.writer()
	for _, key := range attachedKeys(b.txn, r.ID) {
		if _, err := w.deleteRange(ctx, &pb.DeleteRangeRequest{Key: key}); err != nil {
			return Result{}, err
		}
	}
	if err := b.dropLeaseCheckpoint(r.ID); err != nil {
		return Result{}, err
	}
	b.leases.pending[r.ID] = nil
	b.finish(w)
	return Result{Resp: &pb.LeaseRevokeResponse{Header: &pb.ResponseHeader{Revision: b.rev}}}, nil
}

// commit writes the batch's lease records and meta keys and commits
// durably, then publishes the new state to readers. Lease records are
// written here, in the last transaction, so that a revision spread over
// several transactions never changes them before it is complete.
func (b *batch) commit(index uint64) error {
	if b.chunked {
		if _, err := b.spill(); err != nil {
			return err
		}
		if err := b.txn.Delete(metaPending); err != nil {
			return err
		}
	}
	for id, ttl := range b.leases.pending {
		var err error
		if ttl == nil {
			err = b.txn.Delete(leaseKey(id))
		} else {
			err = b.txn.Set(leaseKey(id), encodeInt(*ttl))
		}
		if err != nil {
			return err
		}
	}
	for _, kv := range []struct {
		k []byte
		v int64
	}{{metaRevision, b.rev}, {metaCompact, b.compact}, {metaApplied, int64(index)}} {
		if err := b.txn.Set(kv.k, encodeInt(kv.v)); err != nil {
			return err
		}
	}
	if err := b.txn.Commit(); err != nil {
		return err
	}
	if !b.s.logDurable {
		if err := b.s.syncLocked(b.valueLog); err != nil {
			return err
		}
	}
	s := b.s
	s.leases.merge(b.leases.pending)
	s.rev.Store(b.rev)
	s.compactRev.Store(b.compact)
	s.applied.Store(index)
	for _, c := range b.compactions {
		s.compactor.schedule(c)
	}
	return nil
}

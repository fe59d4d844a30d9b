package storage

import (
	"bytes"
	"context"
	"errors"
	"sort"

	"github.com/dgraph-io/badger/v4"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Errors with etcd's meaning; etcdapi maps them to etcd's gRPC errors.
var (
	ErrCompacted     = errors.New("mvcc: required revision has been compacted")
	ErrFutureRev     = errors.New("mvcc: required revision is a future revision")
	ErrKeyNotFound   = errors.New("etcdserver: key not found")
	ErrLeaseNotFound = errors.New("lease not found")
	ErrLeaseExists   = errors.New("lease already exists")
	ErrTooLarge      = errors.New("storage: one revision exceeds the write batch limit")
)

// Range answers r at the newest revision (or r.Revision) from a consistent
// snapshot. The header carries only the revision; the API layer fills the
// rest.
func (s *Store) Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	cur, txn, compact := s.snapshot()
	defer txn.Discard()
	return rangeAt(ctx, view{txn}, r, cur, compact)
}

// TxnReadOnly runs a Txn whose branches hold only Ranges, without a write.
func (s *Store) TxnReadOnly(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	cur, txn, compact := s.snapshot()
	defer txn.Discard()
	w := &revWriter{v: view{txn}, begin: cur, compact: compact, readOnly: true}
	return w.txn(ctx, r)
}

// snapshot opens a read snapshot with the revision it holds and the
// compaction point it may be read at. The revision is read before the
// snapshot is opened, so the snapshot holds at least that revision; the
// compaction point is read after, so that history the compactor removed
// before the snapshot was opened is never taken for readable.
func (s *Store) snapshot() (rev int64, txn *badger.Txn, compact int64) {
	rev = s.rev.Load()
	txn = s.db.NewTransaction(false)
	return rev, txn, s.compactRev.Load()
}

// rangeAt executes a RangeRequest with etcd's rules for limit, count,
// filters and sorting; cur is the newest revision visible in v.
func rangeAt(ctx context.Context, v view, r *pb.RangeRequest, cur, compact int64) (*pb.RangeResponse, error) {
	rev := r.Revision
	if rev > cur {
		return nil, ErrFutureRev
	}
	if rev <= 0 {
		rev = cur
	}
	if rev < compact {
		return nil, ErrCompacted
	}

	// Sorting and filtering need every match; otherwise one extra match
	// tells whether there are more.
	limit := r.Limit
	if r.SortOrder != pb.RangeRequest_NONE || r.MinModRevision != 0 || r.MaxModRevision != 0 ||
		r.MinCreateRevision != 0 || r.MaxCreateRevision != 0 {
		limit = 0
	}
	if limit > 0 {
		limit++
	}

	var kvs []*mvccpb.KeyValue
	var count int64
	end := gteRange(r.RangeEnd)
	if r.CountOnly {
		n, err := v.countLive(r.Key, end, rev)
		if err != nil {
			return nil, err
		}
		count = n
	} else {
		// Collect up to the limit, then only count the rest.
		var last []byte
		err := v.scan(r.Key, end, rev, func(key []byte, rec *record) bool {
			count++
			kv := rec.keyValue(bytes.Clone(key))
			kv.Value = bytes.Clone(rec.value)
			kvs = append(kvs, kv)
			if limit > 0 && int64(len(kvs)) >= limit {
				last = kv.Key
				return false
			}
			return count&1023 != 0 || ctx.Err() == nil
		})
		if err != nil {
			return nil, err
		}
		if last != nil && end != nil {
			rest, err := v.countLive(append(bytes.Clone(last), 0), end, rev)
			if err != nil {
				return nil, err
			}
			count += rest
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	kvs = prune(kvs, func(kv *mvccpb.KeyValue) bool {
		return (r.MaxModRevision != 0 && kv.ModRevision > r.MaxModRevision) ||
			(r.MinModRevision != 0 && kv.ModRevision < r.MinModRevision) ||
			(r.MaxCreateRevision != 0 && kv.CreateRevision > r.MaxCreateRevision) ||
			(r.MinCreateRevision != 0 && kv.CreateRevision < r.MinCreateRevision)
	})
	sortKVs(kvs, r.SortOrder, r.SortTarget)

	resp := &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: cur}, Count: count}
	if r.Limit > 0 && int64(len(kvs)) > r.Limit {
		kvs = kvs[:r.Limit]
		resp.More = true
	}
	if r.KeysOnly {
		for _, kv := range kvs {
			kv.Value = nil
		}
	}
	if kvs == nil {
		kvs = []*mvccpb.KeyValue{}
	}
	resp.Kvs = kvs
	return resp, nil
}

// gteRange turns etcd's "\x00" range end (every key >= key) into the empty,
// unbounded end; nil stays nil (a single key).
func gteRange(end []byte) []byte {
	if len(end) == 1 && end[0] == 0 {
		return []byte{}
	}
	return end
}

func prune(kvs []*mvccpb.KeyValue, drop func(*mvccpb.KeyValue) bool) []*mvccpb.KeyValue {
	out := kvs[:0]
	for _, kv := range kvs {
		if !drop(kv) {
			out = append(out, kv)
		}
	}
	return out
}

// sortKVs applies etcd's sort rules: results arrive in ascending key order,
// a non-key target with no order sorts ascending. It runs the same
// (unstable) algorithm etcd runs on the same input order, so ties come out
// in the order etcd gives them.
func sortKVs(kvs []*mvccpb.KeyValue, order pb.RangeRequest_SortOrder, target pb.RangeRequest_SortTarget) {
	if target != pb.RangeRequest_KEY && order == pb.RangeRequest_NONE {
		order = pb.RangeRequest_ASCEND
	} else if target == pb.RangeRequest_KEY && order == pb.RangeRequest_ASCEND {
		order = pb.RangeRequest_NONE
	}
	if order == pb.RangeRequest_NONE {
		return
	}
	var sorter sort.Interface
	switch target {
	case pb.RangeRequest_KEY:
		sorter = kvSorter{kvs, func(a, b *mvccpb.KeyValue) bool { return bytes.Compare(a.Key, b.Key) < 0 }}
	case pb.RangeRequest_VERSION:
		sorter = kvSorter{kvs, func(a, b *mvccpb.KeyValue) bool { return a.Version < b.Version }}
	case pb.RangeRequest_CREATE:
		sorter = kvSorter{kvs, func(a, b *mvccpb.KeyValue) bool { return a.CreateRevision < b.CreateRevision }}
	case pb.RangeRequest_MOD:
		sorter = kvSorter{kvs, func(a, b *mvccpb.KeyValue) bool { return a.ModRevision < b.ModRevision }}
	case pb.RangeRequest_VALUE:
		sorter = kvSorter{kvs, func(a, b *mvccpb.KeyValue) bool { return bytes.Compare(a.Value, b.Value) < 0 }}
	default:
		return
	}
	if order == pb.RangeRequest_DESCEND {
		sorter = sort.Reverse(sorter)
	}
	sort.Sort(sorter)
}

type kvSorter struct {
	kvs  []*mvccpb.KeyValue
	less func(a, b *mvccpb.KeyValue) bool
}

func (s kvSorter) Len() int           { return len(s.kvs) }
func (s kvSorter) Swap(i, j int)      { s.kvs[i], s.kvs[j] = s.kvs[j], s.kvs[i] }
func (s kvSorter) Less(i, j int) bool { return s.less(s.kvs[i], s.kvs[j]) }

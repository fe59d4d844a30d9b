package etcdapi

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/sett-dev/sett/storage"
)

// KV is etcd's KV service.
type KV struct {
	pb.UnimplementedKVServer
	s *Server
}

func (s *Server) KV() *KV { return &KV{s: s} }

func (k *KV) Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	if err := checkRange(r); err != nil {
		return nil, err
	}
	// A linearizable read first waits until this member has applied
	// everything committed before it (the read index).
	if !r.Serializable {
		if err := k.s.node.ReadBarrier(ctx); err != nil {
			return nil, toGRPC(err)
		}
	}
	resp, err := k.s.reader.Range(ctx, r)
	if err != nil {
		return nil, toGRPC(err)
	}
	k.s.fill(resp.Header)
	return resp, nil
}

func (k *KV) Put(ctx context.Context, r *pb.PutRequest) (*pb.PutResponse, error) {
	if err := checkPut(r); err != nil {
		return nil, err
	}
	resp, err := k.s.propose(ctx, &pb.InternalRaftRequest{Put: r})
	if err != nil {
		return nil, err
	}
	out := resp.(*pb.PutResponse)
	k.s.fill(out.Header)
	return out, nil
}

func (k *KV) DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	if err := checkDelete(r); err != nil {
		return nil, err
	}
	resp, err := k.s.propose(ctx, &pb.InternalRaftRequest{DeleteRange: r})
	if err != nil {
		return nil, err
	}
	out := resp.(*pb.DeleteRangeResponse)
	k.s.fill(out.Header)
	return out, nil
}

func (k *KV) Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	if err := checkTxn(r, k.s.cfg.MaxTxnOps); err != nil {
		return nil, err
	}
	// Overlaps are checked after the op count, which bounds their cost.
	if _, _, err := checkOverlaps(r.Success); err != nil {
		return nil, err
	}
	if _, _, err := checkOverlaps(r.Failure); err != nil {
		return nil, err
	}
	var out *pb.TxnResponse
	if storage.IsTxnReadOnly(r) {
		if !txnSerializable(r) {
			if err := k.s.node.ReadBarrier(ctx); err != nil {
				return nil, toGRPC(err)
			}
		}
		resp, err := k.s.reader.TxnReadOnly(ctx, r)
		if err != nil {
			return nil, toGRPC(err)
		}
		out = resp
	} else {
		resp, err := k.s.propose(ctx, &pb.InternalRaftRequest{Txn: r})
		if err != nil {
			return nil, err
		}
		out = resp.(*pb.TxnResponse)
	}
	k.s.fill(out.Header)
	return out, nil
}

func (k *KV) Compact(ctx context.Context, r *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	resp, err := k.s.propose(ctx, &pb.InternalRaftRequest{Compaction: r})
	if err != nil {
		return nil, err
	}
	out := resp.(*pb.CompactionResponse)
	// etcd reports the revision at the time of the answer.
	out.Header.Revision = k.s.reader.Rev()
	k.s.fill(out.Header)
	return out, nil
}

// txnSerializable says whether every op of a read-only Txn is a
// serializable range (etcd's rule: then it skips the read index).
func txnSerializable(r *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, op := range ops {
			if rr := op.GetRequestRange(); rr == nil || !rr.Serializable {
				return false
			}
		}
	}
	return true
}

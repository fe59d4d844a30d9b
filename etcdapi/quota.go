package etcdapi

import (
	"context"
	"log/slog"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"

	"github.com/sett-dev/sett/storage"
)

// Costs of etcd's backend quota: a key's metadata and a lease.
const (
	kvOverhead    = 256
	leaseOverhead = 64
)

// QuotaCost is what etcd charges a request against the backend quota: a
// Put its key, value and overhead, a Txn its costlier branch's Puts, a
// LeaseGrant a fixed overhead; everything else (reads, deletes,
// compaction, revoke) is free and never refused.
func QuotaCost(req any) int {
	switch r := req.(type) {
	case *pb.PutRequest:
		return costPut(r)
	case *pb.TxnRequest:
		return costTxn(r)
	case *pb.LeaseGrantRequest:
		return leaseOverhead
	}
	return 0
}

func costPut(r *pb.PutRequest) int { return kvOverhead + len(r.Key) + len(r.Value) }

func costTxn(r *pb.TxnRequest) int {
	branch := func(ops []*pb.RequestOp) int {
		n := 0
		for _, op := range ops {
			if p := op.GetRequestPut(); p != nil {
				n += costPut(p)
			} else if t := op.GetRequestTxn(); t != nil {
				n += costTxn(t)
			}
		}
		return n
	}
	return max(branch(r.Success), branch(r.Failure))
}

// QuotaConfig configures the backend quota check.
type QuotaConfig struct {
	Store *storage.Store
	Space *storage.SpaceMeter
	// QuotaBackendBytes is the --quota-backend-bytes flag: 0 is etcd's
	// default (2 GiB), negative disables the quota.
	QuotaBackendBytes int64
	// Hashes, if set, records the hash etcd computes at each compaction.
	Hashes *CompactionHashes
	Logger *slog.Logger
}

// QuotaInterceptor enforces etcd's backend quota on KV Put and Txn and
// Lease Grant. A request that would take the store past the quota is
// refused with "database space exceeded" and raises the NOSPACE alarm
// (as a command, so that it is replicated and persisted); while the alarm
// is active every charged request is refused, until it is disarmed.
// Reads, deletes, compaction and defragmentation are never refused.
func (s *Server) QuotaInterceptor(cfg QuotaConfig) grpc.UnaryServerInterceptor {
	limit := QuotaBytes(cfg.QuotaBackendBytes)
	if cfg.Space == nil {
		cfg.Space = storage.NewSpaceMeter(cfg.Store, 0)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		cost := QuotaCost(req)
		if cost == 0 {
			// With CORRUPT active, etcd's corrupt applier refuses every write.
			if cfg.Store.Corrupt() && isWrite(req) {
				return nil, rpctypes.ErrGRPCCorrupt
			}
			if c, ok := req.(*pb.CompactionRequest); ok {
				return cfg.Hashes.compact(cfg.Store, c.Revision, func() (any, error) { return handler(ctx, req) })
			}
			return handler(ctx, req)
		}
		if limit > 0 && cfg.Space.Estimate()+int64(cost) >= limit {
			cfg.Logger.Warn("request exceeds the backend quota; raising the NOSPACE alarm",
				"quota-size-bytes", limit, "method", info.FullMethod)
			_, err := s.propose(ctx, &pb.InternalRaftRequest{Alarm: &pb.AlarmRequest{
				Action: pb.AlarmRequest_ACTIVATE, MemberID: s.cfg.MemberID, Alarm: pb.AlarmType_NOSPACE,
			}})
			if err != nil {
				cfg.Logger.Warn("raising the NOSPACE alarm failed", "err", err)
			}
			return nil, rpctypes.ErrGRPCNoSpace
		}
		// Past the quota check, etcd's corrupt applier, then its capped
		// applier refuse the command while their alarm is active.
		if cfg.Store.Corrupt() {
			return nil, rpctypes.ErrGRPCCorrupt
		}
		if cfg.Store.NoSpace() {
			return nil, rpctypes.ErrGRPCNoSpace
		}
		// sett stores a value twice (current state and history) until the
		// history is compacted.
		cfg.Space.Charge(2 * int64(cost))
		return handler(ctx, req)
	}
}

// isWrite reports whether req is a request etcd proposes (and its corrupt
// applier refuses): a write, a write Txn, compaction, lease grant or
// revoke.
func isWrite(req any) bool {
	switch r := req.(type) {
	case *pb.PutRequest, *pb.DeleteRangeRequest, *pb.CompactionRequest, *pb.LeaseGrantRequest, *pb.LeaseRevokeRequest:
		return true
	case *pb.TxnRequest:
		return !storage.IsTxnReadOnly(r)
	}
	return false
}

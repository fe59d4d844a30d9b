package server

import (
	"context"
	"errors"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"

	"github.com/sett-dev/sett/autocompact"
	"github.com/sett-dev/sett/etcdapi"
)

// autoCompactionPolicy parses --auto-compaction-mode and
// --auto-compaction-retention; a Config with neither set (one not made by
// DefaultConfig) has auto-compaction off.
func autoCompactionPolicy(cfg Config) (autocompact.Policy, error) {
	if cfg.AutoCompactionMode == "" && cfg.AutoCompactionRetention == "" {
		return autocompact.Policy{}, nil
	}
	return autocompact.ParsePolicy(cfg.AutoCompactionMode, cfg.AutoCompactionRetention)
}

// newAutoCompactor returns the member's auto-compaction runner, paused
// until the member leads (only the leader's proposes compactions).
// Register it before raft starts so that no change of leadership is
// missed; run it once the frontend exists.
func (s *Server) newAutoCompactor(policy autocompact.Policy) *autocompact.Runner {
	r := autocompact.New(autocompact.Config{
		Policy:  policy,
		Rev:     s.store.Rev,
		Compact: s.autoCompact,
		Logger:  s.log,
	})
	s.node.OnLeadership(func(leader bool) {
		if leader {
			r.Resume()
		} else {
			r.Pause()
		}
	})
	return r
}

// autoCompact compacts as a client's Compact request does: through the
// quota interceptor (which refuses writes under the CORRUPT alarm and
// records the compaction's hash for HashKV) into the KV service's
// Compact, which proposes it through raft.
func (s *Server) autoCompact(ctx context.Context, rev int64) error {
	intercept := s.api.QuotaInterceptor(etcdapi.QuotaConfig{
		Store: s.store, Space: s.front.space, QuotaBackendBytes: s.cfg.QuotaBackendBytes, Hashes: s.front.hashes, Logger: s.log,
	})
	kv := s.api.KV()
	_, err := intercept(ctx, &pb.CompactionRequest{Revision: rev},
		&grpc.UnaryServerInfo{Server: kv, FullMethod: "/etcdserverpb.KV/Compact"},
		func(ctx context.Context, req any) (any, error) { return kv.Compact(ctx, req.(*pb.CompactionRequest)) })
	if errors.Is(err, rpctypes.ErrGRPCCompacted) {
		return autocompact.ErrCompacted
	}
	return err
}

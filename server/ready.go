package server

import (
	"context"
	"errors"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// waitReadyUnary holds a request until the member is ready, as etcd serves
// nothing before its ReadyNotify, then refuses it without a leader if the
// client asked for one (etcd's "require leader" metadata).
func (f *frontend) waitReadyUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := f.waitReady(ctx); err != nil {
		return nil, err
	}
	if f.raft.IsLearner() && !learnerServes(req) {
		return nil, rpctypes.ErrGRPCNotSupportedForLearner
	}
	if requiresLeader(ctx) && f.raft.Leader() == 0 {
		return nil, rpctypes.ErrGRPCNoLeader
	}
	return handler(ctx, req)
}

// waitReadyStream is waitReadyUnary for streams; a stream that requires a
// leader is also ended once the member has had none for three election
// timeouts, as etcd ends it.
func (f *frontend) waitReadyStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := f.waitReady(ss.Context()); err != nil {
		return err
	}
	if f.raft.IsLearner() && info.FullMethod != "/etcdserverpb.Maintenance/Snapshot" {
		return rpctypes.ErrGRPCNotSupportedForLearner
	}
	if !requiresLeader(ss.Context()) {
		return handler(srv, ss)
	}
	if f.raft.Leader() == 0 {
		return rpctypes.ErrGRPCNoLeader
	}
	ctx, cancel := context.WithCancelCause(ss.Context())
	defer cancel(nil)
	go f.monitorLeader(ctx, cancel)
	err := handler(srv, &streamWithContext{ServerStream: ss, ctx: ctx})
	if errors.Is(context.Cause(ctx), errLeaderLost) {
		return rpctypes.ErrGRPCNoLeader
	}
	return err
}

var errLeaderLost = errors.New("no leader")

// learnerServes says whether a learner answers req, as etcd's: Status and
// serializable ranges only.
func learnerServes(req any) bool {
	switch r := req.(type) {
	case *pb.StatusRequest:
		return true
	case *pb.RangeRequest:
		return r.Serializable
	}
	return false
}

func (f *frontend) monitorLeader(ctx context.Context, cancel context.CancelCauseFunc) {
	interval := f.cfg.ElectionTimeout
	if interval <= 0 {
		interval = time.Second
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	missed := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		if f.raft.Leader() != 0 {
			missed = 0
			continue
		}
		if missed++; missed >= 3 {
			cancel(errLeaderLost)
			return
		}
	}
}

type streamWithContext struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *streamWithContext) Context() context.Context { return s.ctx }

func requiresLeader(ctx context.Context) bool {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return false
	}
	v := md.Get(rpctypes.MetadataRequireLeaderKey)
	return len(v) > 0 && v[0] == rpctypes.MetadataHasLeader
}

func (f *frontend) waitReady(ctx context.Context) error {
	if f.ready == nil {
		return nil
	}
	select {
	case <-f.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

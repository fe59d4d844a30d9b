package etcdapi

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// Lease TTL bounds, as etcd's with its default election timeout.
const (
	MaxLeaseTTL = 9000000000
	MinLeaseTTL = 2
)

// Lease is etcd's Lease service: grant and revoke (keep-alive and expiry
// are the lessor's, not yet here).
type Lease struct {
	pb.UnimplementedLeaseServer
	s *Server
}

func (s *Server) Lease() *Lease { return &Lease{s: s} }

func (l *Lease) LeaseGrant(ctx context.Context, r *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	if r.TTL > MaxLeaseTTL {
		return nil, rpctypes.ErrGRPCLeaseTTLTooLarge
	}
	req := &pb.LeaseGrantRequest{ID: r.ID, TTL: max(r.TTL, MinLeaseTTL)}
	// The server picks a positive ID before proposing, so that applying the
	// grant is deterministic.
	for req.ID == 0 {
		req.ID = int64(l.s.ids.next() & (1<<63 - 1))
	}
	resp, err := l.s.propose(ctx, &pb.InternalRaftRequest{LeaseGrant: req})
	if err != nil {
		return nil, err
	}
	out := resp.(*pb.LeaseGrantResponse)
	l.s.fill(out.Header)
	return out, nil
}

func (l *Lease) LeaseRevoke(ctx context.Context, r *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	resp, err := l.s.propose(ctx, &pb.InternalRaftRequest{LeaseRevoke: r})
	if err != nil {
		return nil, err
	}
	out := resp.(*pb.LeaseRevokeResponse)
	l.s.fill(out.Header)
	return out, nil
}

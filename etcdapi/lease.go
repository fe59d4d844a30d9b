package etcdapi

import (
	"context"
	"errors"
	"io"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/sett-dev/sett/lease"
)

// Lease TTL bounds, as etcd's with its default election timeout.
const (
	MaxLeaseTTL = 9000000000
	MinLeaseTTL = 2
)

// Lease is etcd's Lease service. Grants and revokes are commands of the
// write path; keep-alives, TimeToLive and LeaseLeases are the lessor's,
// which learns of grants and revokes from storage as they are applied.
type Lease struct {
	pb.UnimplementedLeaseServer
	s      *Server
	lessor Leases
}

// Leases is what the Lease service asks of the lessor (lease.Router, which
// sends keep-alives and TimeToLive to the leader's lessor).
type Leases interface {
	Renew(ctx context.Context, id int64) (int64, error)
	TimeToLive(ctx context.Context, id int64) (remaining, granted int64, ok bool, err error)
	Keys(id int64) ([][]byte, error)
	Leases() []int64
	Stopped() <-chan struct{}
}

// Lease is the service without a lessor: grant and revoke only.
func (s *Server) Lease() *Lease { return &Lease{s: s} }

// LeaseWith is the whole service, with keep-alives and expiry by lessor.
func (s *Server) LeaseWith(lessor Leases) *Lease { return &Lease{s: s, lessor: lessor} }

// LeaseProposer is the lessor's way into the write path (revokes of
// expired leases, checkpoints), with request IDs and errors as for clients'
// writes.
func (s *Server) LeaseProposer() lease.Proposer {
	return func(ctx context.Context, req *pb.InternalRaftRequest) (any, error) {
		return s.propose(ctx, req)
	}
}

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

// LeaseKeepAlive renews each lease sent on the stream. An unknown lease, or
// one that expired, is answered with TTL 0 (not an error), as etcd does;
// the header is taken before the renewal, so its revision is never newer
// than the renewal.
func (l *Lease) LeaseKeepAlive(stream pb.Lease_LeaseKeepAliveServer) error {
	if l.lessor == nil {
		return l.UnimplementedLeaseServer.LeaseKeepAlive(stream)
	}
	errc := make(chan error, 1)
	go func() { errc <- l.keepAlive(stream) }()
	select {
	case err := <-errc:
		return err
	case <-stream.Context().Done():
		// As etcd: the only server-side cancellation is "no leader".
		err := stream.Context().Err()
		if errors.Is(err, context.Canceled) {
			err = rpctypes.ErrGRPCNoLeader
		}
		return err
	case <-l.lessor.Stopped():
		return rpctypes.ErrGRPCStopped
	}
}

func (l *Lease) keepAlive(stream pb.Lease_LeaseKeepAliveServer) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		resp := &pb.LeaseKeepAliveResponse{ID: req.ID, Header: l.s.fill(&pb.ResponseHeader{})}
		ttl, err := l.lessor.Renew(stream.Context(), req.ID)
		if errors.Is(err, lease.ErrLeaseNotFound) {
			ttl, err = 0, nil
		}
		if err != nil {
			return leaseError(err)
		}
		resp.TTL = ttl
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

// LeaseTimeToLive answers an unknown lease with TTL -1 and no error, as
// etcd does.
func (l *Lease) LeaseTimeToLive(ctx context.Context, r *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	if l.lessor == nil {
		return l.UnimplementedLeaseServer.LeaseTimeToLive(ctx, r)
	}
	ttl, granted, ok, err := l.lessor.TimeToLive(ctx, r.ID)
	if err != nil {
		return nil, leaseError(err)
	}
	if !ok {
		resp := &pb.LeaseTimeToLiveResponse{Header: &pb.ResponseHeader{}, ID: r.ID, TTL: -1}
		l.s.fill(resp.Header)
		return resp, nil
	}
	resp := &pb.LeaseTimeToLiveResponse{Header: &pb.ResponseHeader{}, ID: r.ID, TTL: ttl, GrantedTTL: granted}
	if r.Keys {
		keys, err := l.lessor.Keys(r.ID)
		if err != nil {
			return nil, toGRPC(err)
		}
		resp.Keys = make([][]byte, 0, len(keys))
		resp.Keys = append(resp.Keys, keys...)
	}
	l.s.fill(resp.Header)
	return resp, nil
}

// LeaseLeases lists every lease, soonest expiry first, as etcd does.
func (l *Lease) LeaseLeases(ctx context.Context, r *pb.LeaseLeasesRequest) (*pb.LeaseLeasesResponse, error) {
	if l.lessor == nil {
		return l.UnimplementedLeaseServer.LeaseLeases(ctx, r)
	}
	ids := l.lessor.Leases()
	resp := &pb.LeaseLeasesResponse{Header: &pb.ResponseHeader{}, Leases: make([]*pb.LeaseStatus, len(ids))}
	for i, id := range ids {
		resp.Leases[i] = &pb.LeaseStatus{ID: id}
	}
	l.s.fill(resp.Header)
	return resp, nil
}

// leaseError maps the lessor's errors to etcd's gRPC errors.
func leaseError(err error) error {
	switch {
	case errors.Is(err, lease.ErrLeaseNotFound):
		return rpctypes.ErrGRPCLeaseNotFound
	case errors.Is(err, lease.ErrStopped):
		return rpctypes.ErrGRPCStopped
	}
	return toGRPC(err)
}

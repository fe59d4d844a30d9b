// Package etcdapi serves etcd's v3 gRPC API (KV, Lease, …) on top of a
// storage reader and a write proposer, with etcd 3.6's validation, errors
// and response headers.
//
// A write travels: gRPC handler → validate → Proposer.Propose (replication
// orders and applies it through storage) → storage.Result → response with
// the header filled here. A read goes straight to the Reader's snapshot.
package etcdapi

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/sett-dev/sett/storage"
)

// Reader serves reads from a consistent snapshot.
type Reader interface {
	Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error)
	TxnReadOnly(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error)
	Rev() int64
}

// Node is the member's replication node (replication.Node): it orders
// writes, answers for raft's state and changes the membership.
type Node interface {
	// Propose orders a write and returns once this member applied it.
	Propose(ctx context.Context, req *pb.InternalRaftRequest) (storage.Result, error)
	// ReadBarrier returns once a read served after it is linearizable.
	ReadBarrier(ctx context.Context) error
	Term() uint64
	Leader() uint64
	IsLearner() bool
	CommittedIndex() uint64
	AppliedIndex() uint64

	Members() ([]storage.Member, error)
	AddMember(ctx context.Context, peerURLs []string, learner bool) (storage.Member, []storage.Member, error)
	RemoveMember(ctx context.Context, id uint64) ([]storage.Member, error)
	UpdateMember(ctx context.Context, id uint64, peerURLs []string) ([]storage.Member, error)
	PromoteMember(ctx context.Context, id uint64) ([]storage.Member, error)
	MoveLeader(ctx context.Context, target uint64) error
}

// Config holds what etcd's flags decide about request handling.
type Config struct {
	ClusterID       uint64
	MemberID        uint64
	MaxTxnOps       int // --max-txn-ops
	MaxRequestBytes int // --max-request-bytes
}

// Default limits, as etcd's.
const (
	DefaultMaxTxnOps       = 128
	DefaultMaxRequestBytes = 1536 * 1024
	// GRPCOverheadBytes is the slack etcd adds to --max-request-bytes for
	// gRPC's own receive limit.
	GRPCOverheadBytes = 512 * 1024
)

// Server implements the etcd services.
type Server struct {
	cfg    Config
	reader Reader
	node   Node
	ids    *idGenerator
}

// New builds a Server.
func New(cfg Config, reader Reader, node Node) *Server {
	if cfg.MaxTxnOps <= 0 {
		cfg.MaxTxnOps = DefaultMaxTxnOps
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	return &Server{cfg: cfg, reader: reader, node: node, ids: newIDGenerator(cfg.MemberID)}
}

// fill completes a response header as etcd does: cluster, member and term
// always; the revision only when the handler left it unset.
func (s *Server) fill(h *pb.ResponseHeader) *pb.ResponseHeader {
	if h == nil {
		h = &pb.ResponseHeader{}
	}
	h.ClusterId = s.cfg.ClusterID
	h.MemberId = s.cfg.MemberID
	h.RaftTerm = s.node.Term()
	if h.Revision == 0 {
		h.Revision = s.reader.Rev()
	}
	return h
}

// propose wraps req in etcd's log envelope, enforces --max-request-bytes on
// it, and returns the command's response.
func (s *Server) propose(ctx context.Context, req *pb.InternalRaftRequest) (any, error) {
	req.Header = &pb.RequestHeader{ID: s.ids.next()}
	if req.Size() > s.cfg.MaxRequestBytes {
		return nil, errRequestTooLarge
	}
	res, err := s.node.Propose(ctx, req)
	if err != nil {
		return nil, toGRPC(err)
	}
	if res.Err != nil {
		return nil, toGRPC(res.Err)
	}
	if res.Compacted != nil && req.Compaction != nil && req.Compaction.Physical {
		select {
		case <-res.Compacted:
		case <-ctx.Done():
			return nil, toGRPC(ctx.Err())
		}
	}
	return res.Resp, nil
}

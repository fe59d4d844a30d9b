package etcdapi

import (
	"context"
	"net"
	"net/url"
	"sort"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ClusterConfig describes the one member.
type ClusterConfig struct {
	Name       string
	PeerURLs   []string // --initial-advertise-peer-urls
	ClientURLs []string // --advertise-client-urls
}

// Cluster is etcd's Cluster service for a cluster of one member.
//
// Membership changes are answered as a one-member etcd answers the ones
// that cannot succeed, and sett refuses the ones etcd would accept but
// sett cannot carry out (it does not replicate yet):
//
//   - MemberAdd of a voting member: "re-configuration failed due to not
//     enough started members" (etcd's answer when the new member could
//     not join a quorum; etcd itself accepts it on one member and then
//     loses quorum until the new member starts); of a learner: "too many
//     learner members in cluster" (sett allows none). Invalid or taken
//     peer URLs get etcd's errors first.
//   - MemberRemove of this member: "not enough started members", as etcd;
//     of any other ID: "member not found".
//   - MemberUpdate of this member updates its peer URLs in memory (sett
//     takes them from its flags again at restart); of any other ID:
//     "member not found".
//   - MemberPromote of this member: "can only promote a learner member",
//     as etcd; of any other ID: "member not found".
type Cluster struct {
	pb.UnimplementedClusterServer
	s *Server

	mu   sync.Mutex
	self pb.Member
}

// Cluster builds the Cluster service.
func (s *Server) Cluster(cfg ClusterConfig) *Cluster {
	c := &Cluster{s: s}
	c.self = pb.Member{
		ID:         s.cfg.MemberID,
		Name:       cfg.Name,
		PeerURLs:   append([]string(nil), cfg.PeerURLs...),
		ClientURLs: append([]string(nil), cfg.ClientURLs...),
	}
	return c
}

// header is etcd's Cluster header: IDs and term, no revision.
func (c *Cluster) header() *pb.ResponseHeader {
	return &pb.ResponseHeader{ClusterId: c.s.cfg.ClusterID, MemberId: c.s.cfg.MemberID, RaftTerm: c.s.proposer.Term()}
}

func (c *Cluster) members() []*pb.Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.self
	m.PeerURLs = append([]string(nil), c.self.PeerURLs...)
	m.ClientURLs = append([]string(nil), c.self.ClientURLs...)
	return []*pb.Member{&m}
}

// Members lists the cluster's members (for /members-style callers).
func (c *Cluster) Members() []*pb.Member { return c.members() }

func (c *Cluster) MemberList(ctx context.Context, r *pb.MemberListRequest) (*pb.MemberListResponse, error) {
	return &pb.MemberListResponse{Header: c.header(), Members: c.members()}, nil
}

var errNotEnoughStarted = status.Error(codes.Unknown, rpctypes.ErrMemberNotEnoughStarted.Error())

func (c *Cluster) MemberAdd(ctx context.Context, r *pb.MemberAddRequest) (*pb.MemberAddResponse, error) {
	urls, err := memberURLs(r.PeerURLs)
	if err != nil {
		return nil, rpctypes.ErrGRPCMemberBadURLs
	}
	c.mu.Lock()
	taken := false
	for _, u := range urls {
		for _, have := range c.self.PeerURLs {
			taken = taken || u == have
		}
	}
	c.mu.Unlock()
	if taken {
		return nil, rpctypes.ErrGRPCPeerURLExist
	}
	if r.IsLearner {
		return nil, rpctypes.ErrGRPCTooManyLearners
	}
	return nil, errNotEnoughStarted
}

func (c *Cluster) MemberRemove(ctx context.Context, r *pb.MemberRemoveRequest) (*pb.MemberRemoveResponse, error) {
	if r.ID != c.s.cfg.MemberID {
		return nil, rpctypes.ErrGRPCMemberNotFound
	}
	return nil, errNotEnoughStarted
}

func (c *Cluster) MemberUpdate(ctx context.Context, r *pb.MemberUpdateRequest) (*pb.MemberUpdateResponse, error) {
	if r.ID != c.s.cfg.MemberID {
		return nil, rpctypes.ErrGRPCMemberNotFound
	}
	urls, err := memberURLs(r.PeerURLs)
	if err != nil {
		return nil, rpctypes.ErrGRPCMemberBadURLs
	}
	c.mu.Lock()
	c.self.PeerURLs = urls
	c.mu.Unlock()
	return &pb.MemberUpdateResponse{Header: c.header(), Members: c.members()}, nil
}

func (c *Cluster) MemberPromote(ctx context.Context, r *pb.MemberPromoteRequest) (*pb.MemberPromoteResponse, error) {
	if r.ID != c.s.cfg.MemberID {
		return nil, rpctypes.ErrGRPCMemberNotFound
	}
	return nil, rpctypes.ErrGRPCMemberNotLearner
}

// memberURLs validates peer URLs as etcd's types.NewURLs does (scheme
// http, https, unix or unixs; a host with a port for http(s); no path)
// and returns them sorted.
func memberURLs(in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	for _, s := range in {
		u, err := url.Parse(s)
		if err != nil {
			return nil, err
		}
		switch u.Scheme {
		case "http", "https":
			if _, _, err := net.SplitHostPort(u.Host); err != nil {
				return nil, err
			}
		case "unix", "unixs":
		default:
			return nil, status.Error(codes.InvalidArgument, "bad scheme")
		}
		if u.Path != "" {
			return nil, status.Error(codes.InvalidArgument, "path not allowed")
		}
		out = append(out, u.String())
	}
	sort.Strings(out)
	return out, nil
}

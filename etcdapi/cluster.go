package etcdapi

import (
	"context"
	"net"
	"net/url"
	"sort"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sett-dev/sett/storage"
)

// Cluster is etcd's Cluster service: membership as the applied log
// records it, and changes through the replication node (which checks them
// as etcd does).
type Cluster struct {
	pb.UnimplementedClusterServer
	s *Server
}

// Cluster builds the Cluster service.
func (s *Server) Cluster() *Cluster { return &Cluster{s: s} }

// header is etcd's Cluster header: IDs and term, no revision.
func (c *Cluster) header() *pb.ResponseHeader {
	return &pb.ResponseHeader{ClusterId: c.s.cfg.ClusterID, MemberId: c.s.cfg.MemberID, RaftTerm: c.s.node.Term()}
}

// Members lists the cluster's members in ID order, as etcd does.
func (c *Cluster) Members() ([]*pb.Member, error) {
	ms, err := c.s.node.Members()
	if err != nil {
		return nil, err
	}
	return toPBMembers(ms), nil
}

func toPBMembers(ms []storage.Member) []*pb.Member {
	out := make([]*pb.Member, 0, len(ms))
	for _, m := range ms {
		out = append(out, toPBMember(m))
	}
	return out
}

func toPBMember(m storage.Member) *pb.Member {
	return &pb.Member{
		ID:         m.ID,
		Name:       m.Name,
		PeerURLs:   append([]string(nil), m.PeerURLs...),
		ClientURLs: append([]string(nil), m.ClientURLs...),
		IsLearner:  m.IsLearner,
	}
}

func (c *Cluster) MemberList(ctx context.Context, r *pb.MemberListRequest) (*pb.MemberListResponse, error) {
	if r.Linearizable {
		if err := c.s.node.ReadBarrier(ctx); err != nil {
			return nil, toGRPC(err)
		}
	}
	ms, err := c.Members()
	if err != nil {
		return nil, toGRPC(err)
	}
	return &pb.MemberListResponse{Header: c.header(), Members: ms}, nil
}

func (c *Cluster) MemberAdd(ctx context.Context, r *pb.MemberAddRequest) (*pb.MemberAddResponse, error) {
	urls, err := memberURLs(r.PeerURLs)
	if err != nil {
		return nil, rpctypes.ErrGRPCMemberBadURLs
	}
	m, ms, err := c.s.node.AddMember(ctx, urls, r.IsLearner)
	if err != nil {
		return nil, toGRPC(err)
	}
	return &pb.MemberAddResponse{Header: c.header(), Member: toPBMember(m), Members: toPBMembers(ms)}, nil
}

func (c *Cluster) MemberRemove(ctx context.Context, r *pb.MemberRemoveRequest) (*pb.MemberRemoveResponse, error) {
	ms, err := c.s.node.RemoveMember(ctx, r.ID)
	if err != nil {
		return nil, toGRPC(err)
	}
	return &pb.MemberRemoveResponse{Header: c.header(), Members: toPBMembers(ms)}, nil
}

func (c *Cluster) MemberUpdate(ctx context.Context, r *pb.MemberUpdateRequest) (*pb.MemberUpdateResponse, error) {
	urls, err := memberURLs(r.PeerURLs)
	if err != nil {
		return nil, rpctypes.ErrGRPCMemberBadURLs
	}
	ms, err := c.s.node.UpdateMember(ctx, r.ID, urls)
	if err != nil {
		return nil, toGRPC(err)
	}
	return &pb.MemberUpdateResponse{Header: c.header(), Members: toPBMembers(ms)}, nil
}

func (c *Cluster) MemberPromote(ctx context.Context, r *pb.MemberPromoteRequest) (*pb.MemberPromoteResponse, error) {
	ms, err := c.s.node.PromoteMember(ctx, r.ID)
	if err != nil {
		return nil, toGRPC(err)
	}
	return &pb.MemberPromoteResponse{Header: c.header(), Members: toPBMembers(ms)}, nil
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

package replication

import (
	"context"
	"fmt"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
)

// publish records this member's name and client URLs in the membership
// once a leader exists (etcd's ClusterMemberAttrSet), retrying until it
// is applied; a member counts as started from then on.
func (n *Node) publish() {
	req := &pb.InternalRaftRequest{
		Header: &pb.RequestHeader{ID: n.nextConfID()},
		ClusterMemberAttrSet: &membershippb.ClusterMemberAttrSetRequest{
			Member_ID: n.id,
			MemberAttributes: &membershippb.Attributes{
				Name:       n.cfg.Self.Name,
				ClientUrls: n.cfg.Self.ClientURLs,
			},
		},
	}
	for {
		ctx, cancel := context.WithTimeout(n.ctx, n.requestTimeout())
		err := n.WaitLeader(ctx)
		if err == nil {
			_, err = n.Propose(ctx, req)
		}
		cancel()
		if err == nil {
			n.log.Info("published local member to cluster through raft",
				"local-member-id", fmt.Sprintf("%x", n.id),
				"local-member-attributes", fmt.Sprintf("{Name:%s ClientURLs:%v}", n.cfg.Self.Name, n.cfg.Self.ClientURLs),
				"cluster-id", fmt.Sprintf("%x", n.cfg.ClusterID),
				"publish-timeout", n.requestTimeout())
			close(n.ready)
			return
		}
		select {
		case <-n.stopc:
			return
		case <-time.After(n.cfg.TickInterval):
		}
		req.Header.ID = n.nextConfID()
	}
}

// setClusterVersion is the leader's: it records the version the cluster
// runs once per leadership, if it differs (etcd's ClusterVersionSet).
func (n *Node) setClusterVersion() {
	if n.cfg.Version == "" || n.store.ClusterVersion() == n.cfg.Version {
		return
	}
	ctx, cancel := context.WithTimeout(n.ctx, n.requestTimeout())
	defer cancel()
	req := &pb.InternalRaftRequest{
		Header:            &pb.RequestHeader{ID: n.nextConfID()},
		ClusterVersionSet: &membershippb.ClusterVersionSetRequest{Ver: n.cfg.Version},
	}
	if _, err := n.Propose(ctx, req); err != nil {
		n.log.Warn("could not record the cluster version", "err", err)
	}
}

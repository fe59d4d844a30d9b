package replication

import (
	"fmt"

	"github.com/sett-dev/sett/storage"
)

// logMemberChange logs an applied membership change with etcd's messages
// and fields ("added member", "removed member", "promote member").
func (n *Node) logMemberChange(c *storage.MemberChange) {
	cluster, local := fmt.Sprintf("%x", n.cfg.ClusterID), fmt.Sprintf("%x", n.id)
	switch c.Type {
	case storage.MemberAdd:
		n.log.Info("added member", "cluster-id", cluster, "local-member-id", local,
			"added-peer-id", fmt.Sprintf("%x", c.Member.ID), "added-peer-peer-urls", c.Member.PeerURLs,
			"added-peer-is-learner", c.Member.IsLearner)
	case storage.MemberRemove:
		n.log.Info("removed member", "cluster-id", cluster, "local-member-id", local,
			"removed-remote-peer-id", fmt.Sprintf("%x", c.Member.ID), "removed-remote-peer-urls", c.Member.PeerURLs)
	case storage.MemberPromote:
		n.log.Info("promote member", "cluster-id", cluster, "local-member-id", local,
			"promoted-member-id", fmt.Sprintf("%x", c.Member.ID))
	}
}

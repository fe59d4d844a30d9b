package replication

import (
	"context"
	"encoding/json"
	"github.com/sett-dev/sett/replication/transport"
	"slices"
	"time"
)

// watchRemoval stops a member that was removed from the cluster without
// applying its own removal (the leader stops replicating to it once the
// removal is applied, so it may never learn of it): while it has no
// leader, it asks its peers whether its ID is among the removed ones.
// Removed IDs are never reused, so a lagging peer cannot mislead it.
func (n *Node) watchRemoval() {
	every := 2 * time.Duration(n.cfg.ElectionTicks) * n.cfg.TickInterval
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	leaderless := 0
	for {
		select {
		case <-ticker.C:
		case <-n.stopc:
			return
		}
		if n.Leader() != 0 {
			leaderless = 0
			continue
		}
		if leaderless++; leaderless < 2 {
			continue
		}
		if n.removedPerPeers() {
			n.log.Warn("this member was removed from the cluster; stopping")
			n.fail(ErrMemberRemoved)
			return
		}
	}
}

func (n *Node) removedPerPeers() bool {
	n.peersMu.Lock()
	ids := make([]uint64, 0, len(n.peers))
	for id := range n.peers {
		ids = append(ids, id)
	}
	n.peersMu.Unlock()
	for _, id := range ids {
		ctx, cancel := context.WithTimeout(n.ctx, time.Second)
		b, err := n.tr.Call(ctx, id, transport.PublicMethod(callMembers), nil)
		cancel()
		if err != nil {
			continue
		}
		var info ClusterInfo
		if json.Unmarshal(b, &info) == nil && slices.Contains(info.Removed, n.id) {
			return true
		}
	}
	return false
}

package replication

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/sett-dev/sett/replication/transport"
	"github.com/sett-dev/sett/storage"
)

// Peer calls between members.
const (
	callMembers = "members" // the cluster ID and membership (for joining members)
	callPromote = "promote" // a follower asks the leader to promote a learner
)

// ClusterInfo is what a running member tells a joining one.
type ClusterInfo struct {
	ClusterID uint64           `json:"clusterID"`
	Members   []storage.Member `json:"members"`
	Removed   []uint64         `json:"removed,omitempty"`
}

// Discover asks the members at peerURLs (the others of --initial-cluster)
// for the cluster's ID and membership, as a member started with
// --initial-cluster-state=existing must before it can run.
func Discover(ctx context.Context, peerURLs []string, tlsConf *tls.Config) (ClusterInfo, error) {
	var errs []error
	for _, u := range peerURLs {
		b, err := transport.Discover(ctx, tlsConf, []string{u}, callMembers, nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", u, err))
			continue
		}
		var info ClusterInfo
		if err := json.Unmarshal(b, &info); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", u, err))
			continue
		}
		return info, nil
	}
	return ClusterInfo{}, fmt.Errorf("could not learn the cluster from its members: %w", errors.Join(errs...))
}

// SelfIn finds the member with exactly peerURLs.
func SelfIn(members []storage.Member, peerURLs []string) (storage.Member, bool) {
	want := slices.Sorted(slices.Values(peerURLs))
	for _, m := range members {
		if slices.Equal(slices.Sorted(slices.Values(m.PeerURLs)), want) {
			return m, true
		}
	}
	return storage.Member{}, false
}

// join prepares a member added to a running cluster: its peers are the
// current members; raft then starts empty and the leader sends it the log
// (or a snapshot).
func (n *Node) join(ctx context.Context) error {
	for _, m := range n.cfg.InitialCluster {
		if m.ID != n.id {
			n.tr.AddPeer(m.ID, m.PeerURLs)
		}
	}
	return nil
}

func (n *Node) registerCalls() {
	n.tr.HandlePublic(callMembers, func(ctx context.Context, _ []byte) ([]byte, error) {
		members, removed, err := n.store.Members()
		if err != nil {
			return nil, err
		}
		return json.Marshal(ClusterInfo{ClusterID: n.cfg.ClusterID, Members: members, Removed: removed})
	})
	n.tr.Handle(callDropped, n.handleDropped)
	n.tr.Handle(callPromote, func(ctx context.Context, req []byte) ([]byte, error) {
		var id uint64
		if err := json.Unmarshal(req, &id); err != nil {
			return nil, err
		}
		if !n.IsLeader() {
			return nil, ErrNotLeader
		}
		_, err := n.PromoteMember(ctx, id)
		return nil, err
	})
}

// forwardPromote asks the leader to promote learner id.
func (n *Node) forwardPromote(ctx context.Context, id uint64) error {
	_, err := n.CallLeader(ctx, callPromote, mustJSON(id))
	return err
}

// CallLeader makes a peer call to the current leader. Errors come back
// with etcd's texts, so they can be mapped again to etcd's gRPC errors.
func (n *Node) CallLeader(ctx context.Context, method string, req []byte) ([]byte, error) {
	lead := n.Leader()
	if lead == 0 {
		return nil, ErrNoLeader
	}
	b, err := n.tr.Call(ctx, lead, method, req)
	if err != nil {
		return nil, FromPeerError(err)
	}
	return b, nil
}

// Handle registers the server side of a peer call.
func (n *Node) Handle(method string, fn func(ctx context.Context, req []byte) ([]byte, error)) {
	n.tr.Handle(method, fn)
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

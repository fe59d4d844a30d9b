package replication

import (
	"context"
	"crypto/sha1"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/sett-dev/sett/storage"
)

// confContext is a configuration change's context: the member it is about.
type confContext struct {
	Member  storage.Member `json:"member"`
	Promote bool           `json:"promote,omitempty"`
}

func encodeMember(m storage.Member) []byte {
	b, _ := json.Marshal(confContext{Member: m})
	return b
}

// memberChangeOf is the storage change a configuration change makes.
func memberChangeOf(cc raftpb.ConfChange) (*storage.MemberChange, error) {
	var ctx confContext
	if len(cc.Context) > 0 {
		if err := json.Unmarshal(cc.Context, &ctx); err != nil {
			return nil, err
		}
	}
	m := ctx.Member
	m.ID = cc.NodeID
	switch cc.Type {
	case raftpb.ConfChangeAddNode:
		if ctx.Promote {
			return &storage.MemberChange{Type: storage.MemberPromote, Member: m}, nil
		}
		m.IsLearner = false
		return &storage.MemberChange{Type: storage.MemberAdd, Member: m}, nil
	case raftpb.ConfChangeAddLearnerNode:
		m.IsLearner = true
		return &storage.MemberChange{Type: storage.MemberAdd, Member: m}, nil
	case raftpb.ConfChangeRemoveNode:
		return &storage.MemberChange{Type: storage.MemberRemove, Member: m}, nil
	case raftpb.ConfChangeUpdateNode:
		return &storage.MemberChange{Type: storage.MemberUpdate, Member: m}, nil
	}
	return nil, fmt.Errorf("unknown configuration change type %v", cc.Type)
}

// confAnswer is a configuration change's outcome for its proposer.
type confAnswer struct {
	w   *waiter
	err error
}

// validateChange checks a membership change against the applied
// membership, as etcd's ValidateConfigurationChange does at apply time.
func (n *Node) validateChange(c *storage.MemberChange) error {
	members, removed, err := n.store.Members()
	if err != nil {
		return err
	}
	if c.Type == storage.MemberAdd && slices.Contains(removed, c.Member.ID) {
		return ErrMemberRemoved
	}
	cur, exists := findMember(members, c.Member.ID)
	switch c.Type {
	case storage.MemberAdd:
		if exists {
			return ErrMemberExists
		}
		learners := 0
		for _, m := range members {
			if m.IsLearner {
				learners++
			}
			for _, u := range m.PeerURLs {
				if slices.Contains(c.Member.PeerURLs, u) {
					return ErrPeerURLExists
				}
			}
		}
		if c.Member.IsLearner && learners >= n.cfg.Options.maxLearners() {
			return ErrTooManyLearners
		}
	case storage.MemberRemove:
		if !exists {
			if slices.Contains(removed, c.Member.ID) {
				return ErrMemberRemoved
			}
			return ErrMemberNotFound
		}
	case storage.MemberUpdate:
		if !exists {
			return ErrMemberNotFound
		}
		for _, m := range members {
			if m.ID == c.Member.ID {
				continue
			}
			for _, u := range m.PeerURLs {
				if slices.Contains(c.Member.PeerURLs, u) {
					return ErrPeerURLExists
				}
			}
		}
	case storage.MemberPromote:
		if !exists {
			return ErrMemberNotFound
		}
		if !cur.IsLearner {
			return ErrMemberNotLearner
		}
	}
	return nil
}

// NewMemberID derives a member's ID as etcd does: the first 8 bytes of
// the SHA-1 of its sorted peer URLs, the cluster token and, for members
// added to a running cluster, the time of the request.
func NewMemberID(peerURLs []string, token string, now *time.Time) uint64 {
	urls := slices.Clone(peerURLs)
	sort.Strings(urls)
	var b []byte
	for _, u := range urls {
		b = append(b, u...)
	}
	b = append(b, token...)
	if now != nil {
		b = append(b, fmt.Sprint(now.Unix())...)
	}
	sum := sha1.Sum(b)
	return binary.BigEndian.Uint64(sum[:8])
}

// Members is the current membership, in ID order.
func (n *Node) Members() ([]storage.Member, error) {
	m, _, err := n.store.Members()
	return m, err
}

// proposeConfChange proposes cc and waits until this member applied it.
func (n *Node) proposeConfChange(ctx context.Context, cc raftpb.ConfChange) error {
	cc.ID = n.nextConfID()
	w := n.waits.register(cc.ID, nil)
	leaderChanged := n.leaderChange()
	pctx, cancel := context.WithTimeout(ctx, n.requestTimeout())
	defer cancel()
	if err := n.raft.ProposeConfChange(pctx, cc); err != nil {
		n.waits.cancel(cc.ID)
		return n.proposeError(ctx, pctx, err, leaderChanged)
	}
	select {
	case r := <-w.resc:
		if err, ok := r.(error); ok {
			return err
		}
		return nil
	case <-pctx.Done():
		n.waits.cancel(cc.ID)
		return n.proposeError(ctx, pctx, pctx.Err(), leaderChanged)
	case <-n.donec:
		return ErrStopped
	}
}

// nextConfID is a cluster-unique ID for a configuration change: this
// member's ID mixed with the time, as request IDs are.
func (n *Node) nextConfID() uint64 {
	return n.id<<48 ^ uint64(time.Now().UnixNano())
}

// started says whether a member published its attributes (it has a name):
// etcd's notion of a started member.
func started(m storage.Member) bool { return m.Name != "" }

// AddMember adds a member with peerURLs (a learner if learner) and returns
// it with the membership after the change. Like etcd with its default
// --strict-reconfig-check, it refuses a voter that would leave fewer
// started members than a quorum.
func (n *Node) AddMember(ctx context.Context, peerURLs []string, learner bool) (storage.Member, []storage.Member, error) {
	members, err := n.Members()
	if err != nil {
		return storage.Member{}, nil, err
	}
	learners, voters, startedVoters := 0, 0, 0
	for _, m := range members {
		for _, u := range m.PeerURLs {
			if slices.Contains(peerURLs, u) {
				return storage.Member{}, nil, ErrPeerURLExists
			}
		}
		if m.IsLearner {
			learners++
			continue
		}
		voters++
		if started(m) {
			startedVoters++
		}
	}
	if learner && learners >= 1 {
		return storage.Member{}, nil, ErrTooManyLearners
	}
	if !learner {
		// etcd's IsReadyToAddVotingMember, counting the new member.
		total := voters + 1
		if !(startedVoters == 1 && total == 2) && startedVoters < total/2+1 {
			return storage.Member{}, nil, ErrNotEnoughStarted
		}
	}
	now := time.Now()
	m := storage.Member{ID: NewMemberID(peerURLs, n.cfg.ClusterToken, &now), PeerURLs: peerURLs, IsLearner: learner}
	cc := raftpb.ConfChange{Type: raftpb.ConfChangeAddNode, NodeID: m.ID, Context: encodeMember(m)}
	if learner {
		cc.Type = raftpb.ConfChangeAddLearnerNode
	}
	if err := n.proposeConfChange(ctx, cc); err != nil {
		return storage.Member{}, nil, err
	}
	members, err = n.Members()
	return m, members, err
}

// RemoveMember removes member id. As etcd with --strict-reconfig-check, it
// refuses to remove a voter when the members left that are connected
// would not make a quorum.
func (n *Node) RemoveMember(ctx context.Context, id uint64) ([]storage.Member, error) {
	members, err := n.Members()
	if err != nil {
		return nil, err
	}
	target, ok := findMember(members, id)
	if !ok {
		_, removed, err := n.store.Members()
		if err == nil && slices.Contains(removed, id) {
			return nil, ErrMemberRemoved
		}
		return nil, ErrMemberNotFound
	}
	if !target.IsLearner {
		voters, active := 0, 0
		for _, m := range members {
			if m.IsLearner {
				continue
			}
			voters++
			if m.ID == id {
				continue
			}
			if m.ID == n.id || !n.tr.ActiveSince(m.ID).IsZero() {
				active++
			}
		}
		if voters == 1 {
			return nil, ErrNotEnoughStarted
		}
		if active < (voters-1)/2+1 {
			return nil, ErrUnhealthy
		}
	}
	if err := n.proposeConfChange(ctx, raftpb.ConfChange{Type: raftpb.ConfChangeRemoveNode, NodeID: id}); err != nil {
		return nil, err
	}
	return n.Members()
}

// UpdateMember replaces member id's peer URLs.
func (n *Node) UpdateMember(ctx context.Context, id uint64, peerURLs []string) ([]storage.Member, error) {
	members, err := n.Members()
	if err != nil {
		return nil, err
	}
	target, ok := findMember(members, id)
	if !ok {
		return nil, ErrMemberNotFound
	}
	for _, m := range members {
		if m.ID == id {
			continue
		}
		for _, u := range m.PeerURLs {
			if slices.Contains(peerURLs, u) {
				return nil, ErrPeerURLExists
			}
		}
	}
	target.PeerURLs = peerURLs
	cc := raftpb.ConfChange{Type: raftpb.ConfChangeUpdateNode, NodeID: id, Context: encodeMember(target)}
	if err := n.proposeConfChange(ctx, cc); err != nil {
		return nil, err
	}
	return n.Members()
}

// PromoteMember makes learner id a voter. Only the leader knows whether
// the learner has caught up, so a follower asks the leader.
func (n *Node) PromoteMember(ctx context.Context, id uint64) ([]storage.Member, error) {
	if !n.IsLeader() {
		if err := n.forwardPromote(ctx, id); err != nil {
			return nil, err
		}
		return n.Members()
	}
	members, err := n.Members()
	if err != nil {
		return nil, err
	}
	target, ok := findMember(members, id)
	if !ok {
		return nil, ErrMemberNotFound
	}
	if !target.IsLearner {
		return nil, ErrMemberNotLearner
	}
	if !n.learnerReady(id) {
		return nil, ErrLearnerNotReady
	}
	target.IsLearner = false
	b, _ := json.Marshal(confContext{Member: target, Promote: true})
	if err := n.proposeConfChange(ctx, raftpb.ConfChange{Type: raftpb.ConfChangeAddNode, NodeID: id, Context: b}); err != nil {
		return nil, err
	}
	return n.Members()
}

// learnerReady is etcd's rule: the learner's log matches at least 90% of
// the leader's.
func (n *Node) learnerReady(id uint64) bool {
	st := n.raft.Status()
	pr, ok := st.Progress[id]
	if !ok {
		return false
	}
	leader := st.Progress[n.id].Match
	return float64(pr.Match) >= float64(leader)*0.9
}

func findMember(members []storage.Member, id uint64) (storage.Member, bool) {
	for _, m := range members {
		if m.ID == id {
			return m, true
		}
	}
	return storage.Member{}, false
}

// MoveLeader hands leadership to target, waiting until it leads.
func (n *Node) MoveLeader(ctx context.Context, target uint64) error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	members, err := n.Members()
	if err != nil {
		return err
	}
	m, ok := findMember(members, target)
	if !ok || m.IsLearner {
		return ErrBadLeaderTransferee
	}
	if target == n.id {
		return nil
	}
	// Raft drops forwarded proposals during the transfer: see
	// stepForwarded.
	n.transferring.Store(true)
	defer n.transferring.Store(false)
	n.raft.TransferLeadership(ctx, n.id, target)
	ctx, cancel := context.WithTimeout(ctx, n.requestTimeout())
	defer cancel()
	for n.Leader() != target {
		select {
		case <-n.leaderChange():
		case <-time.After(n.cfg.TickInterval):
		case <-ctx.Done():
			return ErrLeaderTransferFailed
		}
	}
	return nil
}

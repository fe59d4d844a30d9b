package clustertest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// AddMember adds a member through the Cluster API (as a learner if asked)
// and starts it with --initial-cluster-state=existing.
func (c *Cluster) AddMember(ctx context.Context, learner bool) *Member {
	c.t.Helper()
	m := c.newMember()
	var resp *clientv3.MemberAddResponse
	c.retry(ctx, "adding "+m.Name, func(ctx context.Context, cli *clientv3.Client) (err error) {
		if learner {
			resp, err = cli.MemberAddAsLearner(ctx, []string{m.PeerURL()})
		} else {
			resp, err = cli.MemberAdd(ctx, []string{m.PeerURL()})
		}
		if err != nil && strings.Contains(err.Error(), "Peer URLs already exists") {
			// An earlier attempt went through; find it.
			for _, mm := range c.memberList(ctx).Members {
				if slices.Contains(mm.PeerURLs, m.PeerURL()) {
					resp = &clientv3.MemberAddResponse{Member: mm, Members: c.memberList(ctx).Members}
					return nil
				}
			}
		}
		return err
	})
	m.ID, m.Learner = resp.Member.ID, learner
	var initial []string
	for _, mm := range resp.Members {
		name := mm.Name
		if mm.ID == m.ID {
			name = m.Name
		}
		for _, u := range mm.PeerURLs {
			initial = append(initial, name+"="+u)
		}
	}
	c.launch(m, strings.Join(initial, ","), "existing")
	return m
}

// PromoteMember promotes the learner m, retrying while it is not yet in
// sync with the leader.
func (c *Cluster) PromoteMember(ctx context.Context, m *Member) {
	c.t.Helper()
	c.retry(ctx, "promoting "+m.Name, func(ctx context.Context, cli *clientv3.Client) error {
		_, err := cli.MemberPromote(ctx, m.ID)
		if err != nil && strings.Contains(err.Error(), "not a learner") {
			return nil // an earlier attempt went through
		}
		return err
	})
	m.Learner = false
}

// RemoveMember removes m through the Cluster API and stops its process.
func (c *Cluster) RemoveMember(ctx context.Context, m *Member) {
	c.t.Helper()
	c.retry(ctx, "removing "+m.Name, func(ctx context.Context, cli *clientv3.Client) error {
		_, err := cli.MemberRemove(ctx, m.ID)
		if err != nil && strings.Contains(err.Error(), "member not found") {
			return nil // an earlier attempt went through
		}
		return err
	})
	c.mu.Lock()
	m.removed = true
	c.mu.Unlock()
	m.proc.Stop()
}

// CheckMemberList checks that every running member's member list names
// exactly the members not removed, with their IDs, learner flags and peer
// URLs (waiting a while for members still applying a change).
func (c *Cluster) CheckMemberList(ctx context.Context) {
	c.t.Helper()
	want := map[uint64]string{}
	for _, m := range c.Members() {
		want[m.ID] = fmt.Sprintf("%s learner=%v %s", m.Name, m.Learner, m.PeerURL())
	}
	for _, m := range c.Members() {
		if !m.Running() || m.Learner {
			continue
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			cli, err := c.memberClient(m)
			if err != nil {
				c.t.Fatalf("clustertest: %v", err)
			}
			lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			resp, err := cli.MemberList(lctx)
			cancel()
			got := map[uint64]string{}
			if err == nil {
				for _, mm := range resp.Members {
					got[mm.ID] = fmt.Sprintf("%s learner=%v %s", mm.Name, mm.IsLearner, strings.Join(mm.PeerURLs, ","))
				}
			}
			if err == nil && fmt.Sprint(got) == fmt.Sprint(want) {
				break
			}
			if time.Now().After(deadline) {
				c.t.Errorf("clustertest: member list from %s: %v (error %v), want %v", m.Name, got, err, want)
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

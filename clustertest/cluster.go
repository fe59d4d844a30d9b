package clustertest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/sett-dev/sett/internal/testproc"
)

// Timing flags every member gets (both kinds take etcd's flags). The
// election timeout is above etcd's default of 1s because the test machines
// are small and shared: a member starved of CPU for a second must not
// trigger elections nobody asked for.
var timingArgs = []string{"--heartbeat-interval=100", "--election-timeout=2000"}

// Config describes a cluster to start.
type Config struct {
	Size int
	// Netns runs every member in its own network namespace (see Netns),
	// which Partition needs; otherwise members listen on 127.0.0.1.
	Netns bool
	// SnapshotCount, if non-zero, is passed as --snapshot-count and as
	// --snapshot-catchup-entries, so that a follower missing
	// more than twice that many entries is sent a snapshot.
	SnapshotCount int
	// ExtraArgs are appended to every member's flags.
	ExtraArgs []string
}

// Member is one server of a Cluster, current or removed.
type Member struct {
	Name    string
	Index   int    // 0-based, in order of creation
	Host    string // IP address of its URLs
	NetNS   string // its network namespace, if the cluster has them
	ID      uint64 // the member ID the cluster gave it
	Learner bool

	clientPort, peerPort int
	proc                 *testproc.Proc
	removed              bool
}

// ClientURL is the member's client URL.
func (m *Member) ClientURL() string { return "http://" + m.Host + ":" + strconv.Itoa(m.clientPort) }

// PeerURL is the member's (advertised and listened-on) peer URL.
func (m *Member) PeerURL() string { return "http://" + m.Host + ":" + strconv.Itoa(m.peerPort) }

// Running reports whether the member's process is up.
func (m *Member) Running() bool { return m.proc != nil && m.proc.Running() }

// Logs returns the member's output over all its runs.
func (m *Member) Logs() string { return m.proc.Logs() }

func (m *Member) String() string { return m.Name }

// Cluster is a set of member processes of one Kind. Its methods must be
// called from the test's goroutine unless stated otherwise.
type Cluster struct {
	Kind Kind
	Net  *Netns // nil unless Config.Netns

	t     testing.TB
	cfg   Config
	token string

	mu      sync.Mutex
	members []*Member
	clients map[*Member]*clientv3.Client
}

// Start starts a new cluster of cfg.Size members and waits until it is
// healthy. Everything is stopped when the test ends.
func Start(ctx context.Context, t testing.TB, kind Kind, cfg Config) *Cluster {
	t.Helper()
	c := &Cluster{
		Kind:    kind,
		t:       t,
		cfg:     cfg,
		token:   fmt.Sprintf("clustertest-%x", rand.Uint64()),
		clients: map[*Member]*clientv3.Client{},
	}
	if cfg.Netns {
		c.Net = NewNetns(t)
	}
	t.Cleanup(c.closeClients)
	var initial []string
	for range cfg.Size {
		m := c.newMember()
		initial = append(initial, m.Name+"="+m.PeerURL())
	}
	// etcd listens on its client port before the cluster has formed, so
	// members can be started one by one.
	for _, m := range c.members {
		c.launch(m, strings.Join(initial, ","), "new")
	}
	c.waitReadable(ctx)
	c.learnIDs(ctx)
	c.Leader(ctx)
	return c
}

// newMember plans the next member's name and addresses.
func (c *Cluster) newMember() *Member {
	c.mu.Lock()
	i := len(c.members)
	c.mu.Unlock()
	m := &Member{Name: "m" + strconv.Itoa(i), Index: i}
	if c.Net != nil {
		m.NetNS, m.Host = c.Net.AddMember(i)
		m.clientPort, m.peerPort = 2379, 2380
	} else {
		m.Host = "127.0.0.1"
		m.clientPort, m.peerPort = testproc.FreePort(c.t), testproc.FreePort(c.t)
	}
	c.mu.Lock()
	c.members = append(c.members, m)
	c.mu.Unlock()
	return m
}

func (c *Cluster) launch(m *Member, initialCluster, state string) {
	c.t.Helper()
	args := append([]string{"--initial-cluster-token=" + c.token}, timingArgs...)
	if n := c.cfg.SnapshotCount; n > 0 {
		args = append(args, "--snapshot-count="+strconv.Itoa(n), "--snapshot-catchup-entries="+strconv.Itoa(n))
	}
	args = append(args, c.cfg.ExtraArgs...)
	m.proc = c.Kind.Start(c.t, testproc.Options{
		Name:                m.Name,
		ClientPort:          m.clientPort,
		PeerPort:            m.peerPort,
		Host:                m.Host,
		NetNS:               m.NetNS,
		InitialCluster:      initialCluster,
		InitialClusterState: state,
		ExtraArgs:           args,
		ReadyTimeout:        time.Minute,
	})
}

// Members returns the members not removed, in order of creation.
func (c *Cluster) Members() []*Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ms []*Member
	for _, m := range c.members {
		if !m.removed {
			ms = append(ms, m)
		}
	}
	return ms
}

// Voters returns the members not removed that are not learners.
func (c *Cluster) Voters() []*Member {
	var vs []*Member
	for _, m := range c.Members() {
		if !m.Learner {
			vs = append(vs, m)
		}
	}
	return vs
}

// Endpoints returns the client URLs of ms.
func Endpoints(ms []*Member) []string {
	eps := make([]string, len(ms))
	for i, m := range ms {
		eps[i] = m.ClientURL()
	}
	return eps
}

// NewClient returns a client of the given members, closed when the test
// ends. Keep-alives are short so that a client notices a partitioned or
// killed member in seconds.
func (c *Cluster) NewClient(ms ...*Member) *clientv3.Client {
	c.t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            Endpoints(ms),
		DialTimeout:          5 * time.Second,
		DialKeepAliveTime:    2 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
		Logger:               zap.NewNop(),
	})
	if err != nil {
		c.t.Fatalf("clustertest: client of %v: %v", ms, err)
	}
	c.t.Cleanup(func() { cli.Close() })
	return cli
}

// memberClient is a cached client of m alone. Safe for concurrent use.
func (c *Cluster) memberClient(m *Member) (*clientv3.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cli := c.clients[m]; cli != nil {
		return cli, nil
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            []string{m.ClientURL()},
		DialTimeout:          5 * time.Second,
		DialKeepAliveTime:    2 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
		Logger:               zap.NewNop(),
	})
	if err != nil {
		return nil, err
	}
	c.clients[m] = cli
	return cli, nil
}

func (c *Cluster) closeClients() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for m, cli := range c.clients {
		cli.Close()
		delete(c.clients, m)
	}
}

// Status asks m alone for its status. Safe for concurrent use.
func (c *Cluster) Status(ctx context.Context, m *Member) (*clientv3.StatusResponse, error) {
	cli, err := c.memberClient(m)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return cli.Status(ctx, m.ClientURL())
}

// leaderOf returns the member a majority of the voters acknowledges as
// leader, or nil. Only the members in among are asked.
func (c *Cluster) leaderOf(ctx context.Context, among []*Member) (*Member, string) {
	votes := map[uint64]int{}
	var report []string
	for _, m := range among {
		if !m.Running() {
			report = append(report, m.Name+": down")
			continue
		}
		st, err := c.Status(ctx, m)
		if err != nil {
			report = append(report, fmt.Sprintf("%s: %v", m.Name, err))
			continue
		}
		report = append(report, fmt.Sprintf("%s: leader %x term %d index %d", m.Name, st.Leader, st.RaftTerm, st.RaftIndex))
		if st.Leader != 0 {
			votes[st.Leader]++
		}
	}
	quorum := len(c.Voters())/2 + 1
	for id, n := range votes {
		if n < quorum {
			continue
		}
		for _, m := range among {
			if m.ID == id && m.Running() {
				return m, strings.Join(report, "; ")
			}
		}
	}
	return nil, strings.Join(report, "; ")
}

// Leader waits until a majority of the voters agrees on a running leader,
// and returns it.
func (c *Cluster) Leader(ctx context.Context) *Member {
	c.t.Helper()
	return c.LeaderAmong(ctx, c.Members(), nil)
}

// LeaderAmong waits until a majority of the voters, asking only the
// members in among, agrees on a running leader other than not (which may be
// nil), and returns it.
func (c *Cluster) LeaderAmong(ctx context.Context, among []*Member, not *Member) *Member {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var report string
	for {
		var l *Member
		l, report = c.leaderOf(ctx, among)
		if l != nil && l != not {
			return l
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("clustertest: no leader agreed on by a majority: %s", report)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// WaitHealthy waits until every running member serves a linearizable read
// and a majority agrees on a leader.
func (c *Cluster) WaitHealthy(ctx context.Context) {
	c.t.Helper()
	c.waitReadable(ctx)
	c.Leader(ctx)
}

func (c *Cluster) waitReadable(ctx context.Context) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for _, m := range c.Members() {
		if !m.Running() {
			continue
		}
		cli, err := c.memberClient(m)
		if err != nil {
			c.t.Fatalf("clustertest: %v", err)
		}
		for {
			rctx, rcancel := context.WithTimeout(ctx, 3*time.Second)
			_, err := cli.Get(rctx, "clustertest-health")
			rcancel()
			if err == nil {
				break
			}
			select {
			case <-ctx.Done():
				c.t.Fatalf("clustertest: %s not healthy: %v", m.Name, err)
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
}

// learnIDs fills in the member IDs from the member list.
func (c *Cluster) learnIDs(ctx context.Context) {
	c.t.Helper()
	resp := c.memberList(ctx)
	byName := map[string]uint64{}
	for _, mm := range resp.Members {
		byName[mm.Name] = mm.ID
	}
	for _, m := range c.Members() {
		if byName[m.Name] == 0 {
			c.t.Fatalf("clustertest: %s is not in the member list %v", m.Name, resp.Members)
		}
		m.ID = byName[m.Name]
	}
}

func (c *Cluster) memberList(ctx context.Context) *clientv3.MemberListResponse {
	c.t.Helper()
	var resp *clientv3.MemberListResponse
	c.retry(ctx, "member list", func(ctx context.Context, cli *clientv3.Client) (err error) {
		resp, err = cli.MemberList(ctx)
		return err
	})
	return resp
}

// retry runs op until it succeeds, with the running members' clients in
// turn (a member may be down, partitioned or removed meanwhile).
func (c *Cluster) retry(ctx context.Context, what string, op func(context.Context, *clientv3.Client) error) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for i := 0; ; i++ {
		var running []*Member
		for _, m := range c.Members() {
			if m.Running() && !m.Learner {
				running = append(running, m)
			}
		}
		err := errors.New("no member running")
		if len(running) > 0 {
			var cli *clientv3.Client
			if cli, err = c.memberClient(running[i%len(running)]); err == nil {
				octx, ocancel := context.WithTimeout(ctx, 5*time.Second)
				err = op(octx, cli)
				ocancel()
			}
		}
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("clustertest: %s: %v", what, err)
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// Kill sends SIGKILL to m and waits for it to exit.
func (c *Cluster) Kill(m *Member) { m.proc.Kill() }

// Restart starts m again on its data dir (stopping it first if it runs).
func (c *Cluster) Restart(m *Member) {
	c.t.Helper()
	m.proc.Restart(c.t)
}

// Partition cuts the given members off from all others (both directions);
// clients still reach every member. The cluster must have Config.Netns.
func (c *Cluster) Partition(side ...*Member) {
	c.t.Helper()
	if c.Net == nil {
		c.t.Fatalf("clustertest: Partition needs a cluster started with Config.Netns")
	}
	var ips []string
	for _, m := range side {
		ips = append(ips, m.Host)
	}
	c.Net.Partition(ips)
}

// Heal undoes every Partition.
func (c *Cluster) Heal() {
	c.t.Helper()
	if c.Net != nil {
		c.Net.Heal()
	}
}

// CurrentRevision is the store revision a linearizable read sees.
func (c *Cluster) CurrentRevision(ctx context.Context) int64 {
	c.t.Helper()
	var rev int64
	c.retry(ctx, "reading the revision", func(ctx context.Context, cli *clientv3.Client) error {
		resp, err := cli.Get(ctx, "clustertest-health")
		if err == nil {
			rev = resp.Header.Revision
		}
		return err
	})
	return rev
}

package replication

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/sett-dev/sett/replication/raftlog"
	"github.com/sett-dev/sett/replication/transport"
	"github.com/sett-dev/sett/storage"
)

// ApplyObserver sees every committed revision, in order, after it is
// applied and before its proposer is answered.
type ApplyObserver func(revs []storage.Revision)

// Config configures a member's node. Names follow etcd's flags.
type Config struct {
	// Self is this member: ID and advertised peer and client URLs.
	Self storage.Member
	// InitialCluster is every member of a new cluster, this one included
	// (--initial-cluster); when joining (Join), the members to ask for the
	// current membership.
	InitialCluster []storage.Member
	// Join is --initial-cluster-state=existing.
	Join         bool
	ClusterID    uint64
	ClusterToken string
	// DataDir holds the raft log (DataDir/raft) beside the store.
	DataDir string
	Store   *storage.Store
	// Observer is the watch hub's Notify; Resync is told when a snapshot
	// from another member replaced the store.
	Observer ApplyObserver
	Resync   func(rev int64)
	// TickInterval is --heartbeat-interval; ElectionTicks is
	// --election-timeout divided by it.
	TickInterval  time.Duration
	ElectionTicks int
	// SnapshotCount is --snapshot-count: applied entries between raft
	// snapshots (after which the log drops older entries).
	SnapshotCount uint64
	// CatchUpEntries stay in memory after a snapshot for slow followers.
	CatchUpEntries uint64
	// PeerClientTLS dials https peer URLs.
	PeerClientTLS *tls.Config
	// Version is published as the cluster version by the leader.
	Version      string
	UnsafeNoSync bool
	Logger       *slog.Logger
	// Options are etcd's --wal-dir, --max-learners and --pre-vote.
	Options Options
}

func (c *Config) setDefaults() {
	if c.TickInterval <= 0 {
		c.TickInterval = 100 * time.Millisecond
	}
	if c.ElectionTicks <= 0 {
		c.ElectionTicks = 10
	}
	if c.SnapshotCount == 0 {
		c.SnapshotCount = 10000
	}
	if c.CatchUpEntries == 0 {
		c.CatchUpEntries = 5000
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Node is a member's raft node: the ordered, replicated write path.
type Node struct {
	cfg   Config
	id    uint64
	store *storage.Store
	log   *slog.Logger

	raft raft.Node
	mem  *raft.MemoryStorage
	wal  *raftlog.Log
	tr   *transport.Transport

	waits   waitRegistry
	applied appliedWaiter
	reads   *readIndexer

	// Owned by the run loop.
	confState raftpb.ConfState
	snapIndex uint64
	confDone  []confAnswer // configuration changes applied in the current Ready
	raftState raft.StateType
	// snapshotDue forces a raft snapshot after the current Ready.
	snapshotDue bool

	term      atomic.Uint64
	lead      atomic.Uint64
	committed atomic.Uint64
	// raftApplied is the index of the last entry applied (or covered by
	// an installed snapshot); the store may be further along after a
	// snapshot install or a restart.
	raftApplied atomic.Uint64
	applyc      chan applyJob
	isLearner   atomic.Bool
	singleVoter atomic.Bool
	started     chan struct{} // closed once raft runs
	ready       chan struct{} // closed once this member published itself

	leaderMu        sync.Mutex
	leaderObservers []func(leader bool)
	leaderChanged   chan struct{} // closed and replaced at every change of leader

	commitObserver atomic.Pointer[func(time.Duration)]
	installs       atomic.Int64
	leaderChanges  atomic.Int64
	reproposals    atomic.Int64
	// transferring is set while MoveLeader hands leadership over.
	transferring atomic.Bool
	snapObserver atomic.Pointer[func(from uint64)]

	peersMu sync.Mutex
	peers   map[uint64]string // the transport's peers and their URLs

	ctx      context.Context // canceled by Stop
	cancel   context.CancelFunc
	stopOnce sync.Once
	stopc    chan struct{}
	donec    chan struct{}
	failErr  atomic.Pointer[error]
}

// New prepares a node: its transport can be registered on the peer
// server before Start.
func New(cfg Config) (*Node, error) {
	cfg.setDefaults()
	if cfg.Self.ID == 0 {
		return nil, errors.New("replication: member ID is zero")
	}
	n := &Node{
		cfg:           cfg,
		id:            cfg.Self.ID,
		store:         cfg.Store,
		log:           cfg.Logger.With("component", "raft"),
		started:       make(chan struct{}),
		ready:         make(chan struct{}),
		stopc:         make(chan struct{}),
		donec:         make(chan struct{}),
		leaderChanged: make(chan struct{}),
		applyc:        make(chan applyJob, 256),
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.waits.init()
	n.applied.init()
	n.OnLeadership(func(leader bool) {
		if leader {
			go n.setClusterVersion()
		}
	})
	n.tr = transport.New(transport.Config{
		ID:        n.id,
		ClusterID: cfg.ClusterID,
		Raft:      n,
		Snapshots: &snapshots{n: n},
		ClientTLS: cfg.PeerClientTLS,
		Logger:    cfg.Logger,
	})
	n.registerCalls()
	return n, nil
}

// Transport is the peer transport, to be registered on the peer server.
func (n *Node) Transport() *transport.Transport { return n.tr }

// ID is this member's ID.
func (n *Node) ID() uint64 { return n.id }

// Start opens the raft log, bootstraps or restarts raft and runs it.
func (n *Node) Start(ctx context.Context) error {
	wal, st, err := raftlog.Open(n.walDir(), raftlog.Options{NoSync: n.cfg.UnsafeNoSync, Logger: n.cfg.Logger})
	if err != nil {
		return fmt.Errorf("open raft log: %w", err)
	}
	n.wal = wal
	n.mem = raft.NewMemoryStorage()
	rc := &raft.Config{
		ID:                        n.id,
		ElectionTick:              n.cfg.ElectionTicks,
		HeartbeatTick:             1,
		Storage:                   n.mem,
		MaxSizePerMsg:             1 << 20,
		MaxInflightMsgs:           512,
		MaxUncommittedEntriesSize: 1 << 30,
		CheckQuorum:               true,
		PreVote:                   !n.cfg.Options.DisablePreVote,
		Logger:                    raftLogger{n.log},
	}
	fresh := raft.IsEmptyHardState(st.HardState) && st.Snapshot.Index == 0 && len(st.Entries) == 0
	if fresh && n.store.AppliedIndex() > 0 {
		// A store without a raft log (a restored snapshot): it becomes the
		// log's starting snapshot.
		if st, err = n.adoptStore(); err != nil {
			return err
		}
		fresh = false
	}
	switch {
	case !fresh:
		if n.cfg.Options.ForceNewCluster {
			if st, err = n.forceNewCluster(st); err != nil {
				return err
			}
		}
		if err := n.restore(st); err != nil {
			return err
		}
		n.raft = raft.RestartNode(rc)
	case n.cfg.Join:
		if err := n.join(ctx); err != nil {
			return err
		}
		n.raft = raft.RestartNode(rc)
	default:
		peers := make([]raft.Peer, 0, len(n.cfg.InitialCluster))
		for _, m := range n.cfg.InitialCluster {
			peers = append(peers, raft.Peer{ID: m.ID, Context: encodeMember(m)})
			if m.ID != n.id {
				n.tr.AddPeer(m.ID, m.PeerURLs)
			}
		}
		n.singleVoter.Store(len(peers) == 1)
		n.raft = raft.StartNode(rc, peers)
	}
	n.reads = newReadIndexer(n)
	close(n.started)
	go n.run()
	go n.reads.run()
	go n.publish()
	go n.watchRemoval()
	return nil
}

// restore loads the raft log into raft's memory storage and the transport's
// peers from storage's membership.
func (n *Node) restore(st raftlog.State) error {
	if st.Snapshot.Index > 0 {
		if err := n.mem.ApplySnapshot(raftpb.Snapshot{Metadata: st.Snapshot}); err != nil {
			return err
		}
	}
	if err := n.mem.SetHardState(st.HardState); err != nil {
		return err
	}
	if err := n.mem.Append(st.Entries); err != nil {
		return err
	}
	n.confState = st.Snapshot.ConfState
	n.snapIndex = st.Snapshot.Index
	n.raftApplied.Store(st.Snapshot.Index)
	n.term.Store(st.HardState.Term)
	n.committed.Store(st.HardState.Commit)
	n.updateVoterState()
	return n.syncPeers()
}

// adoptStore starts the raft log of a store that has data but no log: its
// applied state is the log's first snapshot, with the membership it
// records, else --initial-cluster.
func (n *Node) adoptStore() (raftlog.State, error) {
	members, _, err := n.store.Members()
	if err != nil {
		return raftlog.State{}, err
	}
	applied := n.store.AppliedIndex()
	if len(members) == 0 {
		entries := make([]storage.Entry, 0, len(n.cfg.InitialCluster))
		for _, m := range n.cfg.InitialCluster {
			entries = append(entries, storage.Entry{Index: applied, Member: &storage.MemberChange{Type: storage.MemberAdd, Member: m}})
		}
		if _, _, err := n.store.Apply(entries); err != nil {
			return raftlog.State{}, err
		}
		if err := n.store.Sync(); err != nil {
			return raftlog.State{}, err
		}
		members = n.cfg.InitialCluster
	}
	var cs raftpb.ConfState
	for _, m := range members {
		if m.IsLearner {
			cs.Learners = append(cs.Learners, m.ID)
		} else {
			cs.Voters = append(cs.Voters, m.ID)
		}
	}
	meta := raftpb.SnapshotMetadata{Index: applied, Term: 1, ConfState: cs}
	hs := raftpb.HardState{Term: 1, Commit: applied}
	if err := n.wal.SaveSnapshot(meta); err != nil {
		return raftlog.State{}, err
	}
	if err := n.wal.Save(hs, nil); err != nil {
		return raftlog.State{}, err
	}
	n.log.Info("started the raft log from existing data", "applied-index", applied, "members", len(members))
	return raftlog.State{HardState: hs, Snapshot: meta}, nil
}

// Stop stops raft and the transport; proposals in flight fail with
// ErrStopped.
func (n *Node) Stop() {
	n.stopOnce.Do(func() { close(n.stopc); n.cancel() })
	select {
	case <-n.started:
		<-n.donec
		n.raft.Stop()
	default:
	}
	n.tr.Stop()
	if n.wal != nil {
		n.wal.Close()
	}
}

// fail stops the node after an error it cannot recover from (a storage
// or log write failed): a member must not go on with state it could not
// persist.
func (n *Node) fail(err error) {
	n.failErr.Store(&err)
	n.log.Error("raft node stopped", "err", err)
	n.stopOnce.Do(func() { close(n.stopc); n.cancel() })
}

// Ready is closed once this member has joined the cluster's log and
// published its name and client URLs (etcd's ReadyNotify): clients are
// served from then on.
func (n *Node) Ready() <-chan struct{} { return n.ready }

// LeaderChanges counts the changes to a new leader this member saw.
func (n *Node) LeaderChanges() int64 { return n.leaderChanges.Load() }

// ObserveSnapshots tells fn of every snapshot received from a member.
func (n *Node) ObserveSnapshots(fn func(from uint64)) { n.snapObserver.Store(&fn) }

// SnapshotsInstalled counts the snapshots from other members installed.
func (n *Node) SnapshotsInstalled() int64 { return n.installs.Load() }

// Done is closed when the node stopped.
func (n *Node) Done() <-chan struct{} { return n.donec }

// Term is the current raft term.
func (n *Node) Term() uint64 { return n.term.Load() }

// Leader is the current leader's ID, 0 if none is known.
func (n *Node) Leader() uint64 { return n.lead.Load() }

// IsLeader says whether this member leads.
func (n *Node) IsLeader() bool { return n.lead.Load() == n.id }

// IsLearner says whether this member is a learner.
func (n *Node) IsLearner() bool { return n.isLearner.Load() }

// CommittedIndex and AppliedIndex are raft's indexes as Status reports them.
func (n *Node) CommittedIndex() uint64 { return n.committed.Load() }
func (n *Node) AppliedIndex() uint64   { return n.raftApplied.Load() }

// ObserveCommits reports the duration of each applied batch to fn.
func (n *Node) ObserveCommits(fn func(time.Duration)) { n.commitObserver.Store(&fn) }

// OnLeadership registers fn, called on the run loop whenever this member
// becomes leader (true) or stops being leader (false).
func (n *Node) OnLeadership(fn func(leader bool)) {
	n.leaderMu.Lock()
	defer n.leaderMu.Unlock()
	n.leaderObservers = append(n.leaderObservers, fn)
}

// leaderChange returns a channel closed at the next change of leader.
func (n *Node) leaderChange() <-chan struct{} {
	n.leaderMu.Lock()
	defer n.leaderMu.Unlock()
	return n.leaderChanged
}

func (n *Node) setLeader(lead uint64) {
	old := n.lead.Swap(lead)
	if old == lead {
		return
	}
	n.log.Info("leader changed", "leader", fmt.Sprintf("%x", lead), "term", n.term.Load())
	if lead != 0 {
		n.leaderChanges.Add(1)
	}
	n.leaderMu.Lock()
	close(n.leaderChanged)
	n.leaderChanged = make(chan struct{})
	obs := append([]func(bool){}, n.leaderObservers...)
	n.leaderMu.Unlock()
	if (old == n.id) != (lead == n.id) {
		for _, fn := range obs {
			fn(lead == n.id)
		}
	}
}

// WaitLeader waits until a leader is known.
func (n *Node) WaitLeader(ctx context.Context) error {
	for n.Leader() == 0 {
		select {
		case <-n.leaderChange():
		case <-ctx.Done():
			return ctx.Err()
		case <-n.stopc:
			return ErrStopped
		}
	}
	return nil
}

// Process, ReportUnreachable and ReportSnapshot are the transport's way
// into raft.
func (n *Node) Process(ctx context.Context, m raftpb.Message) error {
	select {
	case <-n.started:
	default:
		return errors.New("raft not started")
	}
	if m.Type == raftpb.MsgProp && n.mayDropForwarded() {
		return n.stepForwarded(ctx, m)
	}
	return n.raft.Step(ctx, m)
}

func (n *Node) ReportUnreachable(id uint64) {
	select {
	case <-n.started:
		n.raft.ReportUnreachable(id)
	default:
	}
}

func (n *Node) ReportSnapshot(id uint64, status raft.SnapshotStatus) {
	select {
	case <-n.started:
		n.raft.ReportSnapshot(id, status)
	default:
	}
}

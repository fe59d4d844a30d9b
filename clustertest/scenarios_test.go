package clustertest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"
)

// kindsUnderTest are the implementations every scenario runs against.
var kindsUnderTest = []Kind{Etcd, Sett}

// long reports whether SETT_LONG_TESTS=1 asks for longer runs.
func long() bool { return os.Getenv("SETT_LONG_TESTS") == "1" }

// scaled returns normal, or longer under SETT_LONG_TESTS=1.
func scaled[T any](normal, longer T) T {
	if long() {
		return longer
	}
	return normal
}

type scenario struct {
	name     string
	longOnly bool // runs under SETT_LONG_TESTS=1 only
	cfg      Config
	shared   int // workers using every member, besides one pinned to each
	// faults runs while the workload does; every member it leaves in the
	// cluster must be running and connected when it returns.
	faults func(t *testing.T, r *Run)
}

var scenarios = []scenario{
	{
		name:   "replication-3",
		cfg:    Config{Size: 3},
		shared: 2,
		faults: func(t *testing.T, r *Run) { r.Sleep(scaled(4*time.Second, 60*time.Second)) },
	},
	{
		name:   "replication-5",
		cfg:    Config{Size: 5},
		shared: 1,
		faults: func(t *testing.T, r *Run) { r.Sleep(scaled(4*time.Second, 60*time.Second)) },
	},
	{
		name:   "leader-kill",
		cfg:    Config{Size: 3},
		shared: 2,
		faults: leaderKill,
	},
	{
		name:   "follower-snapshot-catch-up",
		cfg:    Config{Size: 3, SnapshotCount: 100},
		shared: 2,
		faults: followerSnapshotCatchUp,
	},
	{
		name:   "member-add-remove",
		cfg:    Config{Size: 3},
		shared: 2,
		faults: memberAddRemove,
	},
	{
		name:   "leader-partition",
		cfg:    Config{Size: 3, Netns: true},
		shared: 2,
		faults: leaderPartition,
	},
	{
		name:   "random-kill",
		cfg:    Config{Size: 3},
		shared: 2,
		faults: randomKill,
	},
	{
		name:     "leader-partition-5",
		longOnly: true,
		cfg:      Config{Size: 5, Netns: true},
		shared:   1,
		faults:   leaderPartition,
	},
	{
		name:     "random-kill-5",
		longOnly: true,
		cfg:      Config{Size: 5},
		shared:   1,
		faults:   randomKill,
	},
}

// leaderKill kills the leader with SIGKILL under load: the others elect a
// new one and keep committing; the old one restarts and rejoins.
func leaderKill(t *testing.T, r *Run) {
	for range scaled(2, 8) {
		r.Sleep(time.Second)
		old := r.C.Leader(r.Ctx)
		before, err := r.C.Status(r.Ctx, old)
		if err != nil {
			t.Fatal(err)
		}
		r.C.Kill(old)
		elected := r.C.LeaderAmong(r.Ctx, r.C.Members(), old)
		after, err := r.C.Status(r.Ctx, elected)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("killed leader %s (term %d); %s elected (term %d)", old, before.RaftTerm, elected, after.RaftTerm)
		if after.RaftTerm <= before.RaftTerm {
			t.Errorf("new leader %s reports raft term %d, not above the killed leader's %d", elected, after.RaftTerm, before.RaftTerm)
		}
		expectProgress(t, r, elected, 2*time.Second)
		r.C.Restart(old)
		r.C.WaitHealthy(r.Ctx)
	}
}

// followerSnapshotCatchUp stops a follower while more entries than the
// leader keeps for slow followers are written: when it comes back it can
// only be caught up by a snapshot.
func followerSnapshotCatchUp(t *testing.T, r *Run) {
	r.Sleep(time.Second)
	for i := range scaled(1, 3) {
		if i > 0 {
			// etcd's leader keeps its whole log for 30s after it sent a
			// snapshot (for the follower to apply it), so a follower left
			// behind within that time could catch up from the log.
			r.Sleep(35 * time.Second)
		}
		catchUpBySnapshot(t, r, i)
	}
	r.Sleep(time.Second)
}

func catchUpBySnapshot(t *testing.T, r *Run, i int) {
	leader := r.C.Leader(r.Ctx)
	var followers []*Member
	for _, m := range r.C.Members() {
		if m != leader {
			followers = append(followers, m)
		}
	}
	follower := followers[i%len(followers)]
	r.C.Kill(follower)
	behind := int64(5 * r.C.cfg.SnapshotCount)
	r.WaitRevision(r.C.CurrentRevision(r.Ctx)+behind, time.Minute)
	r.C.Restart(follower)
	r.C.WaitHealthy(r.Ctx)
	// A linearizable read through the follower succeeded, so it has applied
	// what it was sent; the snapshot counter is per run of the process.
	got, err := r.C.Metric(r.Ctx, follower, "etcd_network_snapshot_receive_success")
	if err != nil || got < 1 {
		t.Errorf("%s was not caught up by a snapshot (etcd_network_snapshot_receive_success = %v, %v)", follower, got, err)
	}
}

// memberAddRemove changes the membership under load: a learner is added
// and promoted, a voter is added, then a follower and the leader are
// removed.
func memberAddRemove(t *testing.T, r *Run) {
	r.Sleep(time.Second)
	learner := r.AddMember(true)
	r.PromoteMember(learner)
	r.Sleep(time.Second)
	voter := r.AddMember(false)
	r.Sleep(time.Second)
	leader := r.C.Leader(r.Ctx)
	for _, m := range r.C.Members() {
		if m != leader && m != learner && m != voter {
			r.RemoveMember(m)
			break
		}
	}
	r.Sleep(time.Second)
	leader = r.C.Leader(r.Ctx)
	r.RemoveMember(leader)
	elected := r.C.Leader(r.Ctx)
	t.Logf("removed leader %s; %s elected; members %v", leader, elected, r.C.Members())
	expectProgress(t, r, elected, time.Second)
	if n := len(r.C.Members()); n != 3 {
		t.Errorf("%d members after adding 2 and removing 2 of 3", n)
	}
}

// leaderPartition cuts the leader, with as many followers as can be while
// staying a minority, off from the other members: the majority elects a
// new leader and keeps committing, a write through the old leader does not
// succeed; after healing the minority catches up.
func leaderPartition(t *testing.T, r *Run) {
	for i := range scaled(1, 4) {
		r.Sleep(time.Second)
		partitionLeader(t, r, i)
	}
	r.Sleep(time.Second)
}

func partitionLeader(t *testing.T, r *Run, i int) {
	old := r.C.Leader(r.Ctx)
	minority := []*Member{old}
	var majority []*Member
	for _, m := range r.C.Members() {
		switch {
		case m == old:
		case len(minority) < (len(r.C.Members())-1)/2:
			minority = append(minority, m)
		default:
			majority = append(majority, m)
		}
	}
	r.C.Partition(minority...)
	elected := r.C.LeaderAmong(r.Ctx, majority, old)
	t.Logf("partitioned %v from %v; %s elected", minority, majority, elected)
	expectProgress(t, r, elected, 2*time.Second)
	in := Input{Kind: OpPut, Key: 0, Value: fmt.Sprintf("through-partitioned-leader-%d", i)}
	call := r.W.History.Call()
	out := r.W.Do(r.pinned[old], in)
	r.W.History.Record(int(r.W.ids.Add(1)), in, call, out)
	if !out.Unknown {
		t.Errorf("a put through the partitioned old leader %s succeeded at revision %d", old, out.Rev)
	}
	r.C.Heal()
	r.C.WaitHealthy(r.Ctx)
}

// randomKill kills any member with SIGKILL under load and restarts it.
func randomKill(t *testing.T, r *Run) {
	for range scaled(3, 12) {
		r.Sleep(time.Duration(500+rand.IntN(1500)) * time.Millisecond)
		ms := r.C.Members()
		m := ms[rand.IntN(len(ms))]
		r.C.Kill(m)
		t.Logf("killed %s", m)
		r.Sleep(time.Duration(500+rand.IntN(1500)) * time.Millisecond)
		r.C.Restart(m)
		r.C.WaitHealthy(r.Ctx)
	}
}

// expectProgress checks that writes commit through m: after d, and then
// for as long as requests cut off by the fault may take to time out, the
// revision read through m must have moved on.
func expectProgress(t *testing.T, r *Run, m *Member, d time.Duration) {
	t.Helper()
	cli, err := r.C.memberClient(m)
	if err != nil {
		t.Fatal(err)
	}
	patience := 4 * r.W.OpTimeout
	// revAbove returns the first revision read through m above floor, or
	// the last one read (-1 if none) once patience runs out.
	revAbove := func(floor int64) int64 {
		deadline := time.Now().Add(patience)
		last := int64(-1)
		for {
			if out := r.W.Do(cli, Input{Kind: OpGet}); !out.Unknown {
				last = out.Rev
			}
			if last > floor || time.Now().After(deadline) {
				return last
			}
			r.Sleep(200 * time.Millisecond)
		}
	}
	before := revAbove(0)
	if before < 0 {
		t.Errorf("no linearizable read through %s in %v", m, patience)
		return
	}
	r.Sleep(d)
	if after := revAbove(before); after <= before {
		t.Errorf("no write committed through %s in %v (revision %d, read %d)", m, d+patience, before, after)
	}
}

// TestCluster runs every scenario against every kind under test; each ends
// with Run.Finish's checks.
func TestCluster(t *testing.T) {
	for _, kind := range kindsUnderTest {
		t.Run(kind.Name, func(t *testing.T) {
			for _, sc := range scenarios {
				if sc.longOnly && !long() {
					continue
				}
				t.Run(sc.name, func(t *testing.T) {
					ctx, cancel := context.WithTimeout(t.Context(), scaled(4*time.Minute, 20*time.Minute))
					defer cancel()
					r := Begin(ctx, t, kind, sc.cfg, sc.shared)
					sc.faults(t, r)
					sum := r.Finish()
					if sum.Ops.OK < 50 {
						t.Errorf("only %v: too few to check anything", sum.Ops)
					}
				})
			}
		})
	}
}

package clustertest

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Prefix holds every key the workload writes.
const Prefix = "/clustertest/"

// Run is one scenario: a cluster under a recorded workload, with a watcher
// on every member, and the checks at the end (Finish).
type Run struct {
	T       testing.TB
	Ctx     context.Context
	C       *Cluster
	W       *Workload
	InitRev int64

	pinned   map[*Member]*clientv3.Client // a worker's client of that member alone
	shared   []*clientv3.Client           // workers' clients of all members
	watchers map[*Member]*Watcher
	logs     []finishedWatch
}

type finishedWatch struct {
	log      WatchLog
	complete bool // must have reached the final revision
}

// Begin starts a cluster, a watcher on every member from revision 1, and
// the workload: one worker pinned to each member and sharedWorkers using
// all members.
func Begin(ctx context.Context, t testing.TB, kind Kind, cfg Config, sharedWorkers int) *Run {
	t.Helper()
	r := &Run{T: t, Ctx: ctx, pinned: map[*Member]*clientv3.Client{}, watchers: map[*Member]*Watcher{}}
	r.C = Start(ctx, t, kind, cfg)
	r.InitRev = r.C.CurrentRevision(ctx)
	r.W = &Workload{History: NewHistory(), Prefix: Prefix}
	var clients []*clientv3.Client
	for _, m := range r.C.Members() {
		r.watch(m)
		r.pinned[m] = r.C.NewClient(m)
		clients = append(clients, r.pinned[m])
	}
	for range sharedWorkers {
		cli := r.C.NewClient(r.C.Members()...)
		r.shared = append(r.shared, cli)
		clients = append(clients, cli)
	}
	r.W.Start(ctx, clients)
	return r
}

func (r *Run) watch(m *Member) {
	r.watchers[m] = StartWatcher(r.Ctx, m.Name, r.C.NewClient(m), Prefix, 1)
}

// Sleep lets the workload run for d.
func (r *Run) Sleep(d time.Duration) {
	select {
	case <-r.Ctx.Done():
	case <-time.After(d):
	}
}

// WaitRevision lets the workload run until the cluster's revision reaches
// rev, and fails the test if it does not within timeout.
func (r *Run) WaitRevision(rev int64, timeout time.Duration) {
	r.T.Helper()
	deadline := time.Now().Add(timeout)
	for {
		cur := r.C.CurrentRevision(r.Ctx)
		if cur >= rev {
			return
		}
		if time.Now().After(deadline) {
			r.T.Fatalf("clustertest: revision %d after %v, want %d", cur, timeout, rev)
		}
		r.Sleep(200 * time.Millisecond)
	}
}

// AddMember adds a member (see Cluster.AddMember); a voter is watched from
// revision 1 and used by the shared workers, a learner (which serves
// neither) once promoted.
func (r *Run) AddMember(learner bool) *Member {
	r.T.Helper()
	m := r.C.AddMember(r.Ctx, learner)
	if !learner {
		r.watch(m)
		r.setEndpoints()
	}
	return m
}

// PromoteMember promotes the learner m (see Cluster.PromoteMember) and
// watches it from revision 1.
func (r *Run) PromoteMember(m *Member) {
	r.T.Helper()
	r.C.PromoteMember(r.Ctx, m)
	// The member serves watches once it has applied its promotion.
	deadline := time.Now().Add(time.Minute)
	for {
		st, err := r.C.Status(r.Ctx, m)
		if err == nil && !st.IsLearner {
			break
		}
		if time.Now().After(deadline) {
			r.T.Fatalf("clustertest: %s still a learner a minute after its promotion (%v)", m, err)
		}
		r.Sleep(100 * time.Millisecond)
	}
	r.watch(m)
	r.setEndpoints()
}

// RemoveMember removes m (see Cluster.RemoveMember); its watcher is stopped
// and checked for what it got.
func (r *Run) RemoveMember(m *Member) {
	r.T.Helper()
	if w := r.watchers[m]; w != nil {
		r.logs = append(r.logs, finishedWatch{log: w.Stop()})
		delete(r.watchers, m)
	}
	r.C.RemoveMember(r.Ctx, m)
	r.setEndpoints()
}

func (r *Run) setEndpoints() {
	eps := Endpoints(r.C.Voters())
	for _, cli := range r.shared {
		cli.SetEndpoints(eps...)
	}
}

// Summary is what Finish checked.
type Summary struct {
	Ops           Counts
	FinalRev      int64
	WatchLogs     int
	WatchEvents   int
	WatchSessions int
	Progress      int
}

// Finish stops the workload, waits until every member is healthy, reads
// every key through every member (recorded too), and checks: the history
// is linearizable; every acknowledged write is in the cluster's history;
// every watcher's guarantees hold; all members have the same KV hash at the
// final revision. Every member must be running (heal and restart first).
func (r *Run) Finish() Summary {
	r.T.Helper()
	t, ctx := r.T, r.Ctx
	r.W.Stop()
	r.C.WaitHealthy(ctx)
	for _, m := range r.C.Members() {
		cli := r.C.NewClient(m)
		for k := range NumKeys {
			in := Input{Kind: OpGet, Key: k}
			call := r.W.History.Call()
			out := r.W.Do(cli, in)
			if out.Unknown {
				t.Errorf("final read of k%d through %s failed", k, m.Name)
			}
			r.W.History.Record(int(r.W.ids.Add(1)), in, call, out)
		}
	}
	finalRev := r.C.CurrentRevision(ctx)
	ops := r.W.History.Operations()
	sum := Summary{Ops: CountOperations(ops), FinalRev: finalRev}

	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for m, w := range r.watchers {
		if err := w.WaitFor(wctx, finalRev); err != nil {
			t.Error(err)
		}
		r.logs = append(r.logs, finishedWatch{log: w.Stop(), complete: true})
		delete(r.watchers, m)
	}

	// The reference history: one more watch, never resumed, from the
	// first member still in the cluster.
	refMember := r.C.Members()[0]
	ref := StartWatcher(ctx, "reference@"+refMember.Name, r.C.NewClient(refMember), Prefix, r.InitRev+1)
	ref.ResumeAfter = 0
	if err := ref.WaitFor(wctx, finalRev); err != nil {
		t.Fatal(err)
	}
	hist, err := NewRevHistory(ref.Stop(), r.InitRev+1, finalRev)
	if err != nil {
		t.Fatal(err)
	}
	var inputs []Input
	for _, op := range ops {
		inputs = append(inputs, op.Input.(Input))
	}
	for _, err := range CheckAcks(hist, r.W, AcknowledgedWrites(ops), inputs) {
		t.Error(err)
	}
	resolved, n := Resolve(ops, hist, r.W)
	t.Logf("writes with unknown outcome: %d took effect, %d did not, %d undecided", n.Applied, n.NoEffect, n.Undecided)
	CheckLinearizable(t, resolved, r.InitRev, time.Minute)
	for _, fw := range r.logs {
		for _, err := range CheckWatch(hist, fw.log, fw.complete) {
			t.Error(err)
		}
		sum.WatchLogs++
		sum.WatchSessions += fw.log.Sessions
		for _, resp := range fw.log.Responses {
			sum.WatchEvents += len(resp.Events)
			if resp.Progress {
				sum.Progress++
			}
		}
	}
	r.C.CheckHashKV(ctx, finalRev)
	r.C.CheckMemberList(ctx)
	r.C.CheckRaftIndex(ctx, uint64(finalRev-r.InitRev))
	t.Logf("%s: %v; final revision %d; %d watchers got %d events and %d progress notifications in %d watches",
		r.C.Kind.Name, sum.Ops, finalRev, sum.WatchLogs, sum.WatchEvents, sum.Progress, sum.WatchSessions)
	return sum
}

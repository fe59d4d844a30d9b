package lease

import (
	"context"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/sett-dev/sett/storage"
)

// fakeStore is storage as the lessor sees it; its proposer applies grants,
// revokes and checkpoints at once and tells the observer.
type fakeStore struct {
	mu     sync.Mutex
	leases map[int64]*storage.Lease
	obs    storage.LeaseObserver
	cps    []*pb.LeaseCheckpoint // every checkpoint proposed, in order
	revoks []time.Time           // when each revoke was applied
}

func newFakeStore(ls ...storage.Lease) *fakeStore {
	f := &fakeStore{leases: map[int64]*storage.Lease{}}
	for _, l := range ls {
		f.leases[l.ID] = &l
	}
	return f
}

func (f *fakeStore) LeaseStates() ([]storage.Lease, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []storage.Lease
	for _, l := range f.leases {
		out = append(out, *l)
	}
	return out, nil
}

func (f *fakeStore) LeaseKeys(int64) ([][]byte, error)     { return nil, nil }
func (f *fakeStore) ObserveLeases(o storage.LeaseObserver) { f.obs = o }

func (f *fakeStore) propose(_ context.Context, req *pb.InternalRaftRequest) (any, error) {
	f.mu.Lock()
	var changes []storage.LeaseChange
	switch {
	case req.LeaseGrant != nil:
		g := req.LeaseGrant
		f.leases[g.ID] = &storage.Lease{ID: g.ID, TTL: g.TTL}
		changes = append(changes, storage.LeaseChange{ID: g.ID, TTL: g.TTL})
	case req.LeaseRevoke != nil:
		if _, ok := f.leases[req.LeaseRevoke.ID]; !ok {
			f.mu.Unlock()
			return nil, storage.ErrLeaseNotFound
		}
		delete(f.leases, req.LeaseRevoke.ID)
		f.revoks = append(f.revoks, time.Now())
		changes = append(changes, storage.LeaseChange{ID: req.LeaseRevoke.ID, Revoked: true})
	case req.LeaseCheckpoint != nil:
		for _, cp := range req.LeaseCheckpoint.Checkpoints {
			f.cps = append(f.cps, cp)
			if l := f.leases[cp.ID]; l != nil {
				l.Remaining = cp.Remaining_TTL
			}
		}
	}
	f.mu.Unlock()
	if len(changes) > 0 {
		f.obs(changes)
	}
	return &pb.LeaseCheckpointResponse{}, nil
}

func (f *fakeStore) remaining(id int64) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l := f.leases[id]; l != nil {
		return l.Remaining
	}
	return -1
}

func (f *fakeStore) checkpoints() []*pb.LeaseCheckpoint {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*pb.LeaseCheckpoint(nil), f.cps...)
}

func (f *fakeStore) has(id int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.leases[id]
	return ok
}

func start(t *testing.T, f *fakeStore, cfg Config) *Lessor {
	t.Helper()
	le, err := New(cfg, f)
	if err != nil {
		t.Fatal(err)
	}
	le.Start(f.propose)
	t.Cleanup(le.Stop)
	return le
}

// Promote gives each lease its checkpointed remaining TTL, else its full
// TTL, plus the extension; TTLs below the minimum are raised.
func TestPromoteUsesCheckpoints(t *testing.T) {
	f := newFakeStore(
		storage.Lease{ID: 1, TTL: 100, Remaining: 40},
		storage.Lease{ID: 2, TTL: 100},
		storage.Lease{ID: 3, TTL: 1},
	)
	le := start(t, f, Config{})
	for _, c := range []struct{ id, ttl, granted int64 }{{1, 40, 100}, {2, 100, 100}, {3, 2, 2}} {
		ttl, granted, ok := le.Lookup(c.id)
		if !ok || ttl != c.ttl || granted != c.granted {
			t.Errorf("lease %d: TTL %d granted %d ok %v; want %d %d", c.id, ttl, granted, ok, c.ttl, c.granted)
		}
	}
}

// With many leases expiring together, Promote spreads their expiries to at
// most 3/4 of the revoke rate per second, and never brings one forward.
func TestPromoteSpreadsExpiries(t *testing.T) {
	var ls []storage.Lease
	for i := range 400 {
		ls = append(ls, storage.Lease{ID: int64(i + 1), TTL: 60 + int64(i%2)})
	}
	le, err := New(Config{RevokeRate: 200}, newFakeStore(ls...))
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	le.Promote(time.Second)
	le.mu.Lock()
	defer le.mu.Unlock()
	first := before.Add(61 * time.Second)
	perSecond := map[int]int{}
	for _, l := range le.leases {
		if l.expiry.Before(first) {
			t.Fatalf("lease %d expires before its TTL", l.id)
		}
		perSecond[int(l.expiry.Sub(first)/time.Second)]++
	}
	for s, n := range perSecond {
		if n > 150+1 {
			t.Errorf("%d expiries in second %d, want at most 150", n, s)
		}
	}
	t.Logf("expiries per second after the first: %v", perSecond)
	if len(perSecond) < 3 {
		t.Errorf("expiries not spread: %v", perSecond)
	}
}

// Checkpoints: due leases get their remaining TTL recorded, periodically;
// a renewal clears the checkpoint first; short leases are not checkpointed.
func TestCheckpointsAndRenewal(t *testing.T) {
	f := newFakeStore()
	le := start(t, f, Config{CheckpointInterval: 2500 * time.Millisecond})
	f.propose(context.Background(), &pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: 1, TTL: 30}})
	f.propose(context.Background(), &pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: 2, TTL: 30}})
	// No longer than the interval: never checkpointed.
	f.propose(context.Background(), &pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: 3, TTL: 2}})
	time.Sleep(3 * time.Second)
	if r := f.remaining(1); r != 28 && r != 27 {
		t.Fatalf("lease 1 checkpointed %d at 3 s, want 28", r)
	}
	ttl, err := le.Renew(context.Background(), 1)
	if err != nil || ttl != 30 {
		t.Fatalf("renew: %d %v", ttl, err)
	}
	if r := f.remaining(1); r != 0 {
		t.Fatalf("checkpoint not cleared by renewal: %d", r)
	}
	n := len(f.checkpoints())
	// A second renewal has nothing to clear: no write.
	if _, err := le.Renew(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if len(f.checkpoints()) != n {
		t.Fatalf("renewal without checkpoint proposed one")
	}
	time.Sleep(2500 * time.Millisecond)
	if r := f.remaining(2); r != 25 && r != 24 {
		t.Fatalf("lease 2 checkpointed %d at about 5.5 s, want 25", r)
	}
	for _, cp := range f.checkpoints() {
		if cp.ID == 3 {
			t.Fatalf("short lease checkpointed: %v", cp)
		}
	}
}

// The observer follows grants and revokes; revoking wakes renewals of the
// expired lease; an expired lease is revoked through the proposer.
func TestExpiryThroughProposer(t *testing.T) {
	f := newFakeStore()
	le := start(t, f, Config{})
	f.propose(context.Background(), &pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: 9, TTL: 2}})
	if _, _, ok := le.Lookup(9); !ok {
		t.Fatal("granted lease unknown to the lessor")
	}
	if got := le.Leases(); len(got) != 1 || got[0] != 9 {
		t.Fatalf("leases %v", got)
	}
	start := time.Now()
	for f.has(9) {
		if time.Since(start) > 4*time.Second {
			t.Fatal("lease not revoked")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if d := time.Since(start); d < 1900*time.Millisecond || d > 2600*time.Millisecond {
		t.Fatalf("revoked after %v, want about 2 s", d)
	}
	if _, _, ok := le.Lookup(9); ok {
		t.Fatal("revoked lease still known")
	}
	if _, err := le.Renew(context.Background(), 9); err != ErrLeaseNotFound {
		t.Fatalf("renew of revoked lease: %v", err)
	}
	// Revoked and granted again in one batch: a fresh lease.
	f.propose(context.Background(), &pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: 5, TTL: 100}})
	f.obs([]storage.LeaseChange{{ID: 5, TTL: 50}})
	if ttl, granted, _ := le.Lookup(5); granted != 50 || ttl != 49 {
		t.Fatalf("re-granted lease: TTL %d granted %d", ttl, granted)
	}
}

// Expired leases are revoked at etcd's rate: 500 per half second.
func TestExpiryRateLimit(t *testing.T) {
	f := newFakeStore()
	start(t, f, Config{})
	// Granted in one batch: all expire at the same moment.
	var changes []storage.LeaseChange
	f.mu.Lock()
	for i := range 1200 {
		id := int64(i + 1)
		f.leases[id] = &storage.Lease{ID: id, TTL: 2}
		changes = append(changes, storage.LeaseChange{ID: id, TTL: 2})
	}
	f.mu.Unlock()
	f.obs(changes)
	deadline := time.Now().Add(6 * time.Second)
	for {
		f.mu.Lock()
		n, revoks := len(f.leases), append([]time.Time(nil), f.revoks...)
		f.mu.Unlock()
		if n == 0 {
			first := revoks[0]
			within := 0
			for _, r := range revoks {
				if r.Sub(first) < 400*time.Millisecond {
					within++
				}
			}
			t.Logf("1200 leases revoked over %v, %d in the first 400 ms", revoks[len(revoks)-1].Sub(first), within)
			if within > 500 {
				t.Fatalf("%d revokes within 400 ms, want at most 500", within)
			}
			if d := revoks[len(revoks)-1].Sub(first); d < 900*time.Millisecond || d > 2500*time.Millisecond {
				t.Fatalf("revokes spread over %v, want about 1 s", d)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d leases left", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

package storagesuite

import (
	"context"
	"testing"
	"time"

	etcdrpc "go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/apis/example"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/storage/etcd3"
	testingclock "k8s.io/utils/clock/testing"
)

// The tests in this file cover what the etcd3 package's compact_test.go,
// linearized_read_test.go and store_test.go check of the server through
// exported API: the apiserver's compaction loop and transaction, and the
// revision that reads report.

// TestCompactorLoop drives the apiserver's compactor with a fake clock:
// each cycle compacts to the revision the previous cycle recorded in
// compact_rev_key, so a revision is compacted one cycle after it was seen.
func TestCompactorLoop(t *testing.T) {
	ctx := context.Background()
	client := startClient(t)
	clock := testingclock.NewFakeClock(time.Now())
	c := etcd3.NewCompactor(client, time.Minute, clock, nil)
	t.Cleanup(c.Stop)
	waitForClockWaiter(t, clock)

	step := func() {
		t.Helper()
		clock.Step(time.Minute)
		waitForClockWaiter(t, clock)
	}
	wantCompactRev := func(want int64) {
		t.Helper()
		if got := c.CompactRevision(); got != want {
			t.Errorf("CompactRevision() = %d, want %d", got, want)
		}
	}

	step() // records the revision before the first write
	wantCompactRev(0)

	first, err := client.Put(ctx, "/somekey", "data")
	if err != nil {
		t.Fatal(err)
	}
	rev1 := first.Header.Revision
	wantReadable(t, ctx, client, rev1)

	step() // compacts to the revision before the first write
	wantReadable(t, ctx, client, rev1)
	wantCompactRev(rev1 - 1)

	second, err := client.Put(ctx, "/somekey", "data2")
	if err != nil {
		t.Fatal(err)
	}
	rev2 := second.Header.Revision
	wantReadable(t, ctx, client, rev2)

	step() // compacts past the first write (its own compact_rev_key write)
	wantCompacted(t, ctx, client, rev1)
	wantCompactRev(rev1 + 1)
	wantReadable(t, ctx, client, rev2)

	step()
	wantCompacted(t, ctx, client, rev1)
	wantCompacted(t, ctx, client, rev2)
	wantCompactRev(rev2 + 1)
}

func waitForClockWaiter(t *testing.T, clock *testingclock.FakeClock) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !clock.HasWaiters() {
		if time.Now().After(deadline) {
			t.Fatal("compactor is not waiting on the clock")
		}
		time.Sleep(time.Millisecond)
	}
}

func wantCompacted(t *testing.T, ctx context.Context, client *clientv3.Client, rev int64) {
	t.Helper()
	if _, err := client.Get(ctx, "/somekey", clientv3.WithRev(rev)); err != etcdrpc.ErrCompacted {
		t.Errorf("Get at revision %d: err = %v, want %v", rev, err, etcdrpc.ErrCompacted)
	}
}

func wantReadable(t *testing.T, ctx context.Context, client *clientv3.Client, rev int64) {
	t.Helper()
	if _, err := client.Get(ctx, "/somekey", clientv3.WithRev(rev)); err != nil {
		t.Errorf("Get at revision %d: %v", rev, err)
	}
}

// TestCompactConflict runs three apiservers' compaction transactions: the
// second one uses a stale logical time, so it must not compact and must
// learn the current time from compact_rev_key's version.
func TestCompactConflict(t *testing.T) {
	ctx := context.Background()
	client := startClient(t)
	put, err := client.Put(ctx, "/somekey", "data")
	if err != nil {
		t.Fatal(err)
	}
	rev := put.Header.Revision

	steps := []struct {
		name                        string
		time, compactTo             int64
		wantTime, wantCur, wantComp int64
	}{
		{name: "first at time 0 compacts", time: 0, compactTo: rev, wantTime: 1, wantCur: rev + 1, wantComp: rev},
		{name: "second at time 0 fails", time: 0, compactTo: rev + 1, wantTime: 1, wantCur: rev + 1, wantComp: rev},
		{name: "third at time 1 compacts", time: 1, compactTo: rev + 1, wantTime: 2, wantCur: rev + 2, wantComp: rev + 1},
	}
	for _, s := range steps {
		gotTime, gotCur, gotComp, err := etcd3.Compact(ctx, client, s.time, s.compactTo)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if gotTime != s.wantTime || gotCur != s.wantCur || gotComp != s.wantComp {
			t.Errorf("%s: (time, current rev, compacted rev) = (%d, %d, %d), want (%d, %d, %d)",
				s.name, gotTime, gotCur, gotComp, s.wantTime, s.wantCur, s.wantComp)
		}
	}
}

// TestLinearizedReadRevisionInvariant: linearizable reads must not raise
// the revision a later list reports.
func TestLinearizedReadRevisionInvariant(t *testing.T) {
	ctx, store, client := testSetup(t)
	key := "/pods//testkey"
	out := &example.Pod{}
	obj := &example.Pod{ObjectMeta: metav1.ObjectMeta{Name: "foo", SelfLink: "testlink"}}
	if err := store.Create(ctx, key, obj, out, 0); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := client.KV.Get(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	list := &example.PodList{}
	if err := store.GetList(ctx, "/pods/", storage.ListOptions{Predicate: storage.Everything, Recursive: true}, list); err != nil {
		t.Fatal(err)
	}
	if list.ResourceVersion != out.ResourceVersion {
		t.Fatalf("list resource version %s after reads, want the create's %s", list.ResourceVersion, out.ResourceVersion)
	}
}

// TestGetCurrentResourceVersion: the store's current resource version is
// the server's revision, moved by writes outside the resource prefix too.
func TestGetCurrentResourceVersion(t *testing.T) {
	ctx, store, client := testSetup(t)
	created := &example.Pod{}
	if err := store.Create(ctx, "/pods/ns/pod-1", &example.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "pod-1"}}, created, 0); err != nil {
		t.Fatal(err)
	}
	podRV, err := store.Versioner().ParseResourceVersion(created.ResourceVersion)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := store.GetCurrentResourceVersion(ctx); err != nil || got != podRV {
		t.Fatalf("GetCurrentResourceVersion() = %d, %v; want the pod's %d", got, err, podRV)
	}

	resp, err := client.KV.Put(ctx, "compact_rev_key", created.ResourceVersion)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := store.GetCurrentResourceVersion(ctx); err != nil || got != uint64(resp.Header.Revision) {
		t.Fatalf("GetCurrentResourceVersion() = %d, %v; want the unrelated put's %d", got, err, resp.Header.Revision)
	}

	got := &example.Pod{}
	if err := store.Get(ctx, "/pods/ns/pod-1", storage.GetOptions{}, got); err != nil {
		t.Fatal(err)
	}
	if got.ResourceVersion != created.ResourceVersion {
		t.Fatalf("pod resource version %s after an unrelated write, want %s", got.ResourceVersion, created.ResourceVersion)
	}
}

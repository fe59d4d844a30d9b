package replication

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// A member of a 3-member cluster whose peers are gone for good, restarted
// with ForceNewCluster, leads a one-member cluster with every write and
// takes new ones; restarted again without it, it stays one.
func TestForceNewCluster(t *testing.T) {
	c := startClusterTicks(t, 3, 10000, 10)
	for i := range 30 {
		put(t, c.nodes[i%3], fmt.Sprintf("k%02d", i), fmt.Sprint(i))
	}
	c.waitApplied(c.nodes[0].CommittedIndex(), -1)
	for i := range c.nodes {
		c.stop(i)
	}
	restart := func(force bool) (*Node, func()) {
		t.Helper()
		store := openStore(t, c.dirs[0])
		n, err := New(Config{
			Self: c.members[0], InitialCluster: c.members, ClusterID: 7, DataDir: c.dirs[0], Store: store,
			TickInterval: 100 * time.Millisecond, ElectionTicks: 10, UnsafeNoSync: true, Logger: quiet(),
			Options: Options{ForceNewCluster: force},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		stop := func() { n.Stop(); store.Close() }
		t.Cleanup(stop)
		deadline := time.Now().Add(10 * time.Second)
		for !n.IsLeader() {
			if time.Now().After(deadline) {
				t.Fatal("the forced member does not lead")
			}
			time.Sleep(20 * time.Millisecond)
		}
		for i := range 30 {
			if got := get(t, store, fmt.Sprintf("k%02d", i)); got != fmt.Sprint(i) {
				t.Fatalf("k%02d = %q after forcing a new cluster", i, got)
			}
		}
		ms, err := n.Members()
		if err != nil || len(ms) != 1 || ms[0].ID != c.members[0].ID || ms[0].Name == "" {
			t.Fatalf("members %+v, %v; want only %x", ms, err, c.members[0].ID)
		}
		return n, stop
	}
	n, stop := restart(true)
	put(t, n, "after", "1")
	stop()
	n, _ = restart(false)
	put(t, n, "again", "1")
}

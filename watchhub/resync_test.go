package watchhub

import (
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/sett-dev/sett/storage"
)

// Revisions the hub never saw (a snapshot installed from another member
// replaced the store) reach live watchers after Resync, in order, once.
func TestResyncReplaysMissedRevisions(t *testing.T) {
	e := newTestEnv(t, Config{})
	s := e.hub.NewStream()
	defer s.Close()
	s.Watch(spec{key: []byte("k"), end: []byte("l")}.request(1))
	if r := next(t, s, wait).Resp; !r.Created {
		t.Fatalf("not created: %s", show(r))
	}
	first := e.put("k1", "v")

	// Write behind the hub's back, as an installed snapshot does.
	index := e.store.AppliedIndex() + 1000
	var entries []storage.Entry
	for i, k := range []string{"k2", "k3", "x", "k2"} {
		entries = append(entries, storage.Entry{Index: index + uint64(i), Req: &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte(k), Value: []byte("w")}}})
	}
	if _, _, err := e.store.Apply(entries); err != nil {
		t.Fatal(err)
	}
	e.hub.Resync(e.store.Rev())

	var got []string
	var revs []int64
	for {
		out, ok := tryNext(s, 500*time.Millisecond)
		if !ok {
			break
		}
		for _, ev := range out.Resp.Events {
			got = append(got, string(ev.Kv.Key))
			revs = append(revs, ev.Kv.ModRevision)
		}
	}
	want := []string{"k1", "k2", "k3", "k2"}
	if len(got) != len(want) {
		t.Fatalf("events for %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] || (i > 0 && revs[i] <= revs[i-1]) {
			t.Fatalf("events for %v at %v, want %v in revision order from %d", got, revs, want, first)
		}
	}
	if e.hub.Rev() != e.store.Rev() {
		t.Fatalf("hub at %d, store at %d", e.hub.Rev(), e.store.Rev())
	}
}

package etcdapi_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/sett-dev/sett/etcdapi"
	"github.com/sett-dev/sett/lease"
	"github.com/sett-dev/sett/replication"
	"github.com/sett-dev/sett/storage"
)

const (
	testClusterID = 0x1234
	testMemberID  = 0x5678
)

// node is an in-process member: storage, write path, lessor and gRPC.
type node struct {
	t      *testing.T
	dir    string
	store  *storage.Store
	local  *replication.Node
	lessor *lease.Lessor
	srv    *grpc.Server
	cli    *clientv3.Client
	kv     pb.KVClient
	lc     pb.LeaseClient

	mu   sync.Mutex
	revs []storage.Revision // every committed revision, as the watch helper sees them
}

type nodeOpts struct {
	lease lease.Config
	// wrap, if set, wraps the lessor's proposer.
	wrap func(lease.Proposer) lease.Proposer
}

func startNode(t *testing.T, dir string, o nodeOpts) *node {
	t.Helper()
	n := &node{t: t, dir: dir}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sopts := storage.DefaultOptions(dir)
	sopts.Logger = log
	var err error
	if n.store, err = storage.Open(sopts); err != nil {
		t.Fatal(err)
	}
	n.local, err = replication.StartSingle(n.store, dir, log, func(revs []storage.Revision) {
		n.mu.Lock()
		n.revs = append(n.revs, revs...)
		n.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	api := etcdapi.New(etcdapi.Config{ClusterID: testClusterID, MemberID: testMemberID}, n.store, n.local)
	o.lease.Logger = log
	if n.lessor, err = lease.New(o.lease, n.store); err != nil {
		t.Fatal(err)
	}
	p := api.LeaseProposer()
	if o.wrap != nil {
		p = o.wrap(p)
	}
	n.lessor.Start(p)
	n.srv = grpc.NewServer()
	pb.RegisterKVServer(n.srv, api.KV())
	pb.RegisterLeaseServer(n.srv, api.LeaseWith(lease.NewRouter(n.lessor, n.local)))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go n.srv.Serve(l)
	n.cli, err = clientv3.New(clientv3.Config{Endpoints: []string{l.Addr().String()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	n.kv = pb.NewKVClient(n.cli.ActiveConnection())
	n.lc = pb.NewLeaseClient(n.cli.ActiveConnection())
	t.Cleanup(n.stop)
	return n
}

// stop shuts the member down cleanly (idempotent).
func (n *node) stop() {
	if n.store == nil {
		return
	}
	n.cli.Close()
	n.lessor.Stop()
	n.srv.Stop()
	n.local.Stop()
	n.store.Close()
	n.store = nil
}

func (n *node) revisions() []storage.Revision {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]storage.Revision(nil), n.revs...)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// putWithLease attaches n keys "<prefix>%06d" to lease id, 128 per Txn.
func putWithLease(t *testing.T, n *node, prefix string, count int, id int64) {
	t.Helper()
	for i := 0; i < count; i += 128 {
		var ops []*pb.RequestOp
		for j := i; j < min(count, i+128); j++ {
			ops = append(ops, &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{
				Key: []byte(fmt.Sprintf("%s%06d", prefix, j)), Value: []byte("v"), Lease: id}}})
		}
		if _, err := n.kv.Txn(ctx(t), &pb.TxnRequest{Success: ops}); err != nil {
			t.Fatal(err)
		}
	}
}

func prefixEnd(p string) []byte {
	e := []byte(p)
	e[len(e)-1]++
	return e
}

func count(t *testing.T, n *node, prefix string, rev int64) (*pb.RangeResponse, int64) {
	t.Helper()
	r, err := n.kv.Range(ctx(t), &pb.RangeRequest{Key: []byte(prefix), RangeEnd: prefixEnd(prefix), CountOnly: true, Revision: rev})
	if err != nil {
		t.Fatal(err)
	}
	return r, r.Count
}

// deleteRevision finds the one revision deleting the keys under prefix and
// checks it deletes exactly want keys, in key order.
func deleteRevision(t *testing.T, n *node, prefix string, want int) int64 {
	t.Helper()
	var found []storage.Revision
	for _, r := range n.revisions() {
		for _, ev := range r.Events {
			if ev.Type == mvccpb.DELETE && bytes.HasPrefix(ev.Kv.Key, []byte(prefix)) {
				found = append(found, r)
				break
			}
		}
	}
	if len(found) != 1 {
		t.Fatalf("keys under %s deleted in %d revisions, want 1", prefix, len(found))
	}
	r := found[0]
	if len(r.Events) != want {
		t.Fatalf("revision %d has %d events, want %d", r.Rev, len(r.Events), want)
	}
	for i, ev := range r.Events {
		if ev.Type != mvccpb.DELETE || ev.Kv.ModRevision != r.Rev {
			t.Fatalf("event %d of revision %d: %v", i, r.Rev, ev)
		}
		if i > 0 && bytes.Compare(r.Events[i-1].Kv.Key, ev.Kv.Key) >= 0 {
			t.Fatalf("revision %d: deletes not in key order at %d", r.Rev, i)
		}
	}
	return r.Rev
}

// The Kubernetes pattern: one lease for 1000 keys, never kept alive. The
// keys disappear together, in one revision of DELETE events, on time.
func TestLeaseExpiryDeletesKeysOnTime(t *testing.T) {
	n := startNode(t, t.TempDir(), nodeOpts{})
	const ttl = 4
	g, err := n.cli.Grant(ctx(t), ttl)
	if err != nil {
		t.Fatal(err)
	}
	granted := time.Now()
	putWithLease(t, n, "/events/", 1000, int64(g.ID))
	_, before := count(t, n, "/events/", 0)
	if before != 1000 {
		t.Fatalf("%d keys before expiry", before)
	}
	lastPut := n.store.Rev()
	var gone time.Duration
	for {
		if _, c := count(t, n, "/events/", 0); c == 0 {
			gone = time.Since(granted)
			break
		}
		if time.Since(granted) > ttl*time.Second+5*time.Second {
			t.Fatalf("keys still there %v after the grant", time.Since(granted))
		}
		time.Sleep(10 * time.Millisecond)
	}
	// etcd deletes within its 500 ms check interval after the TTL; sett
	// at the expiry itself. The upper bound allows for the polling and a
	// loaded two-core CI machine running other test packages alongside.
	t.Logf("keys deleted %v after the grant (TTL %ds)", gone, ttl)
	if gone < ttl*time.Second-100*time.Millisecond || gone > ttl*time.Second+expiryLag {
		t.Fatalf("keys deleted %v after the grant, want about %ds", gone, ttl)
	}
	rev := deleteRevision(t, n, "/events/", 1000)
	if rev != lastPut+1 {
		t.Fatalf("delete revision %d, want %d", rev, lastPut+1)
	}
	ttlResp, err := n.lc.LeaseTimeToLive(ctx(t), &pb.LeaseTimeToLiveRequest{ID: int64(g.ID), Keys: true})
	if err != nil || ttlResp.TTL != -1 || ttlResp.ID != int64(g.ID) || ttlResp.GrantedTTL != 0 || len(ttlResp.Keys) != 0 {
		t.Fatalf("TimeToLive of an expired lease: %v, %v", ttlResp, err)
	}
	if _, err := n.cli.KeepAliveOnce(ctx(t), g.ID); err != rpctypes.ErrLeaseNotFound {
		t.Fatalf("KeepAliveOnce of an expired lease: %v", err)
	}
	if _, err := n.cli.Revoke(ctx(t), g.ID); err == nil || err.Error() != rpctypes.ErrLeaseNotFound.Error() {
		t.Fatalf("Revoke of an expired lease: %v", err)
	}
}

// Revoking a lease with 10,000 keys deletes them all in one revision.
func TestLeaseRevokeTenThousandKeysOneRevision(t *testing.T) {
	n := startNode(t, t.TempDir(), nodeOpts{})
	g, err := n.cli.Grant(ctx(t), 600)
	if err != nil {
		t.Fatal(err)
	}
	putWithLease(t, n, "/big/", 10000, int64(g.ID))
	before := n.store.Rev()
	resp, err := n.cli.Revoke(ctx(t), g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Revision != before+1 {
		t.Fatalf("revoke answered at revision %d, want %d", resp.Header.Revision, before+1)
	}
	r, c := count(t, n, "/big/", 0)
	if c != 0 || r.Header.Revision != before+1 {
		t.Fatalf("after revoke: %d keys at revision %d", c, r.Header.Revision)
	}
	if _, c := count(t, n, "/big/", before); c != 10000 {
		t.Fatalf("at revision %d: %d keys, want 10000", before, c)
	}
	// Every key's deletion is at the same revision (its last mod_revision
	// at before+1 is the tombstone: read the history just below).
	if rev := deleteRevision(t, n, "/big/", 10000); rev != before+1 {
		t.Fatalf("deleted at %d, want %d", rev, before+1)
	}
	if ls, err := n.cli.Leases(ctx(t)); err != nil || len(ls.Leases) != 0 {
		t.Fatalf("leases after revoke: %v %v", ls, err)
	}
}

// keepAliveDuration is how long TestLeaseKeepAliveClient keeps a lease
// alive: 20 s by default, 2 minutes with SETT_LONG_TESTS=1.
func keepAliveDuration() time.Duration {
	if os.Getenv("SETT_LONG_TESTS") != "" {
		return 2 * time.Minute
	}
	return 20 * time.Second
}

// clientv3's KeepAlive helper keeps a short lease and its key alive for
// many TTLs; once it stops, the lease expires on time.
func TestLeaseKeepAliveClient(t *testing.T) {
	n := startNode(t, t.TempDir(), nodeOpts{})
	const ttl = 2
	g, err := n.cli.Grant(ctx(t), ttl)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.cli.Put(ctx(t), "/ka/key", "v", clientv3.WithLease(g.ID)); err != nil {
		t.Fatal(err)
	}
	kctx, stop := context.WithCancel(context.Background())
	defer stop()
	ch, err := n.cli.KeepAlive(kctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var last time.Time
	responses := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		for r := range ch {
			if r.TTL != ttl || r.ID != g.ID {
				t.Errorf("keep-alive response %+v", r)
			}
			mu.Lock()
			responses++
			last = time.Now()
			mu.Unlock()
		}
	}()
	d := keepAliveDuration()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		r, err := n.cli.Get(ctx(t), "/ka/key")
		if err != nil || len(r.Kvs) != 1 {
			t.Fatalf("key gone while kept alive: %v %v", r, err)
		}
		tr, err := n.cli.TimeToLive(ctx(t), g.ID)
		if err != nil || tr.TTL < 0 || tr.TTL > ttl || tr.GrantedTTL != ttl {
			t.Fatalf("TimeToLive while kept alive: %+v %v", tr, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	stop()
	<-done
	mu.Lock()
	lastRenew, got := last, responses
	mu.Unlock()
	// The client renews every TTL/3, on a 500 ms tick: at least once a TTL.
	if want := int(d / (ttl * time.Second)); got < want {
		t.Fatalf("%d keep-alive responses in %v, want about %d", got, d, want)
	}
	for {
		r, err := n.cli.Get(ctx(t), "/ka/key")
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Kvs) == 0 {
			break
		}
		if time.Since(lastRenew) > ttl*time.Second+2*time.Second {
			t.Fatalf("key still there %v after the last renewal", time.Since(lastRenew))
		}
		time.Sleep(10 * time.Millisecond)
	}
	gone := time.Since(lastRenew)
	t.Logf("%d keep-alives over %v; key deleted %v after the last renewal", got, d, gone)
	if gone < ttl*time.Second-200*time.Millisecond || gone > ttl*time.Second+expiryLag {
		t.Fatalf("key deleted %v after the last renewal, want about %ds", gone, ttl)
	}
}

func wantHeader(t *testing.T, h *pb.ResponseHeader, rev int64) {
	t.Helper()
	if h == nil || h.ClusterId != testClusterID || h.MemberId != testMemberID || h.RaftTerm == 0 || h.Revision != rev {
		t.Fatalf("header %+v, want revision %d", h, rev)
	}
}

func TestLeaseTimeToLiveLeasesAndKeepAliveStream(t *testing.T) {
	n := startNode(t, t.TempDir(), nodeOpts{})
	for _, g := range []struct{ id, ttl int64 }{{100, 30}, {200, 10}, {300, 20}, {-400, 40}} {
		if _, err := n.lc.LeaseGrant(ctx(t), &pb.LeaseGrantRequest{ID: g.id, TTL: g.ttl}); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"/t/b", "/t/a", "/t/c"} {
		if _, err := n.kv.Put(ctx(t), &pb.PutRequest{Key: []byte(k), Value: []byte("v"), Lease: 100}); err != nil {
			t.Fatal(err)
		}
	}
	rev := n.store.Rev()

	// Leases: soonest expiry first.
	ls, err := n.lc.LeaseLeases(ctx(t), &pb.LeaseLeasesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	wantHeader(t, ls.Header, rev)
	var ids []int64
	for _, l := range ls.Leases {
		ids = append(ids, l.ID)
	}
	if fmt.Sprint(ids) != "[200 300 100 -400]" {
		t.Fatalf("leases %v", ids)
	}

	// TimeToLive with and without keys; an unknown lease is TTL -1.
	tr, err := n.lc.LeaseTimeToLive(ctx(t), &pb.LeaseTimeToLiveRequest{ID: 100, Keys: true})
	if err != nil {
		t.Fatal(err)
	}
	wantHeader(t, tr.Header, rev)
	if tr.ID != 100 || tr.TTL != 29 || tr.GrantedTTL != 30 || fmt.Sprintf("%q", tr.Keys) != `["/t/a" "/t/b" "/t/c"]` {
		t.Fatalf("TimeToLive with keys: %+v", tr)
	}
	tr, err = n.lc.LeaseTimeToLive(ctx(t), &pb.LeaseTimeToLiveRequest{ID: 200})
	if err != nil || tr.ID != 200 || tr.TTL != 9 || tr.GrantedTTL != 10 || tr.Keys != nil {
		t.Fatalf("TimeToLive without keys: %+v %v", tr, err)
	}
	tr, err = n.lc.LeaseTimeToLive(ctx(t), &pb.LeaseTimeToLiveRequest{ID: 300, Keys: true})
	if err != nil || tr.TTL != 19 || len(tr.Keys) != 0 {
		t.Fatalf("TimeToLive with keys, none attached: %+v %v", tr, err)
	}
	for _, id := range []int64{999, 0} {
		tr, err = n.lc.LeaseTimeToLive(ctx(t), &pb.LeaseTimeToLiveRequest{ID: id, Keys: true})
		if err != nil {
			t.Fatal(err)
		}
		wantHeader(t, tr.Header, rev)
		if tr.ID != id || tr.TTL != -1 || tr.GrantedTTL != 0 || tr.Keys != nil {
			t.Fatalf("TimeToLive of unknown lease %d: %+v", id, tr)
		}
	}

	// KeepAlive: known leases get their granted TTL, unknown ones TTL 0.
	stream, err := n.lc.LeaseKeepAlive(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ id, ttl int64 }{{200, 10}, {999, 0}, {0, 0}, {-400, 40}, {200, 10}} {
		if err := stream.Send(&pb.LeaseKeepAliveRequest{ID: c.id}); err != nil {
			t.Fatal(err)
		}
		r, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		wantHeader(t, r.Header, rev)
		if r.ID != c.id || r.TTL != c.ttl {
			t.Fatalf("keep-alive of %d: %+v", c.id, r)
		}
	}
	stream.CloseSend()
	if _, err := stream.Recv(); err != io.EOF {
		t.Fatalf("after CloseSend: %v", err)
	}
	tr, err = n.lc.LeaseTimeToLive(ctx(t), &pb.LeaseTimeToLiveRequest{ID: -400})
	if err != nil || tr.TTL != 39 {
		t.Fatalf("TimeToLive after renewal: %+v %v", tr, err)
	}

	// Errors, as etcd's.
	if _, err := n.lc.LeaseGrant(ctx(t), &pb.LeaseGrantRequest{ID: 100, TTL: 5}); err == nil || err.Error() != rpctypes.ErrGRPCLeaseExist.Error() {
		t.Fatalf("grant of an existing ID: %v", err)
	}
	if _, err := n.lc.LeaseGrant(ctx(t), &pb.LeaseGrantRequest{TTL: etcdapi.MaxLeaseTTL + 1}); err == nil || err.Error() != rpctypes.ErrGRPCLeaseTTLTooLarge.Error() {
		t.Fatalf("grant of a too long TTL: %v", err)
	}
	if _, err := n.lc.LeaseRevoke(ctx(t), &pb.LeaseRevokeRequest{ID: 999}); err == nil || err.Error() != rpctypes.ErrGRPCLeaseNotFound.Error() {
		t.Fatalf("revoke of an unknown lease: %v", err)
	}
	g, err := n.lc.LeaseGrant(ctx(t), &pb.LeaseGrantRequest{ID: 500, TTL: 1})
	if err != nil || g.TTL != etcdapi.MinLeaseTTL {
		t.Fatalf("grant below the minimum TTL: %+v %v", g, err)
	}
	tr, _ = n.lc.LeaseTimeToLive(ctx(t), &pb.LeaseTimeToLiveRequest{ID: 500})
	if tr.GrantedTTL != etcdapi.MinLeaseTTL || tr.TTL != etcdapi.MinLeaseTTL-1 {
		t.Fatalf("TimeToLive of a minimum lease: %+v", tr)
	}
}

// delayRevokes holds the lessor's revoke proposals back for d.
func delayRevokes(d time.Duration) func(lease.Proposer) lease.Proposer {
	return func(p lease.Proposer) lease.Proposer {
		return func(ctx context.Context, req *pb.InternalRaftRequest) (any, error) {
			if req.LeaseRevoke != nil {
				time.Sleep(d)
			}
			return p(ctx, req)
		}
	}
}

// A keep-alive of a lease that has expired but is not revoked yet waits
// for the revoke and answers TTL 0, as etcd's does; TimeToLive meanwhile
// still knows the lease.
func TestLeaseKeepAliveOfExpiredLeaseWaitsForRevoke(t *testing.T) {
	n := startNode(t, t.TempDir(), nodeOpts{wrap: delayRevokes(1500 * time.Millisecond)})
	if _, err := n.lc.LeaseGrant(ctx(t), &pb.LeaseGrantRequest{ID: 7, TTL: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.kv.Put(ctx(t), &pb.PutRequest{Key: []byte("/x/k"), Value: []byte("v"), Lease: 7}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2300 * time.Millisecond)
	tr, err := n.lc.LeaseTimeToLive(ctx(t), &pb.LeaseTimeToLiveRequest{ID: 7})
	if err != nil || tr.TTL > 0 || tr.TTL < -1 || tr.GrantedTTL != 2 {
		t.Fatalf("TimeToLive of an expired, unrevoked lease: %+v %v", tr, err)
	}
	start := time.Now()
	r, err := n.cli.KeepAliveOnce(ctx(t), 7)
	waited := time.Since(start)
	if err != rpctypes.ErrLeaseNotFound {
		t.Fatalf("keep-alive of an expired lease: %+v %v", r, err)
	}
	if waited < 500*time.Millisecond {
		t.Fatalf("keep-alive answered after %v, before the revoke", waited)
	}
	if _, c := count(t, n, "/x/", 0); c != 0 {
		t.Fatalf("%d keys left", c)
	}
}

// Checkpoints record remaining TTLs; a renewal clears them; a restart
// gives each lease its checkpointed remaining TTL (else its full TTL) plus
// a second, counting from the restart.
func TestLeaseCheckpointsAndRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := nodeOpts{lease: lease.Config{CheckpointInterval: time.Second}}
	n := startNode(t, dir, cfg)
	if _, err := n.lc.LeaseGrant(ctx(t), &pb.LeaseGrantRequest{ID: 1, TTL: 30}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.lc.LeaseGrant(ctx(t), &pb.LeaseGrantRequest{ID: 2, TTL: 30}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.kv.Put(ctx(t), &pb.PutRequest{Key: []byte("/cp/k"), Value: []byte("v"), Lease: 1}); err != nil {
		t.Fatal(err)
	}
	revBefore := n.store.Rev()
	remaining := func(id int64) int64 {
		t.Helper()
		states, err := n.store.LeaseStates()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range states {
			if s.ID == id {
				return s.Remaining
			}
		}
		t.Fatalf("lease %d not stored", id)
		return 0
	}
	time.Sleep(3500 * time.Millisecond)
	r1 := remaining(1)
	if r1 < 26 || r1 > 29 {
		t.Fatalf("checkpointed remaining TTL %d after 3.5 s of 30", r1)
	}
	if n.store.Rev() != revBefore {
		t.Fatalf("checkpoints moved the revision from %d to %d", revBefore, n.store.Rev())
	}
	// A renewal clears the checkpoint before answering.
	if _, err := n.cli.KeepAliveOnce(ctx(t), 2); err != nil {
		t.Fatal(err)
	}
	if r := remaining(2); r != 0 {
		t.Fatalf("checkpoint after renewal: %d", r)
	}
	time.Sleep(2500 * time.Millisecond)
	r1, r2 := remaining(1), remaining(2)
	if r2 < 26 || r2 > 29 {
		t.Fatalf("checkpoint of the renewed lease: %d", r2)
	}
	n.stop()
	time.Sleep(2 * time.Second) // downtime does not count

	n = startNode(t, dir, nodeOpts{})
	for _, c := range []struct{ id, checkpointed int64 }{{1, r1}, {2, r2}} {
		tr, err := n.lc.LeaseTimeToLive(ctx(t), &pb.LeaseTimeToLiveRequest{ID: c.id, Keys: true})
		if err != nil {
			t.Fatal(err)
		}
		// checkpointed + 1 s, truncated after a few milliseconds.
		if tr.TTL != c.checkpointed && tr.TTL != c.checkpointed-1 {
			t.Fatalf("lease %d after restart: TTL %d, checkpointed %d", c.id, tr.TTL, c.checkpointed)
		}
		if tr.GrantedTTL != 30 {
			t.Fatalf("lease %d after restart: %+v", c.id, tr)
		}
		if c.id == 1 && (len(tr.Keys) != 1 || string(tr.Keys[0]) != "/cp/k") {
			t.Fatalf("keys after restart: %q", tr.Keys)
		}
	}
}

// Without a checkpoint (a TTL no longer than the checkpoint interval) a
// lease restarts with its full TTL plus a second; leases expire after a
// restart, and a short one is not lost.
func TestLeaseRestartWithoutCheckpoint(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, nodeOpts{})
	if _, err := n.lc.LeaseGrant(ctx(t), &pb.LeaseGrantRequest{ID: 1, TTL: 60}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.lc.LeaseGrant(ctx(t), &pb.LeaseGrantRequest{ID: 2, TTL: 2}); err != nil {
		t.Fatal(err)
	}
	putWithLease(t, n, "/short/", 100, 2)
	time.Sleep(time.Second)
	n.stop()

	n = startNode(t, dir, nodeOpts{})
	restarted := time.Now()
	tr, err := n.lc.LeaseTimeToLive(ctx(t), &pb.LeaseTimeToLiveRequest{ID: 1})
	if err != nil || tr.TTL != 60 {
		t.Fatalf("60 s lease after restart: %+v %v (want 60: full TTL + 1 s, truncated)", tr, err)
	}
	tr, err = n.lc.LeaseTimeToLive(ctx(t), &pb.LeaseTimeToLiveRequest{ID: 2})
	if err != nil || tr.TTL != 2 {
		t.Fatalf("2 s lease after restart: %+v %v", tr, err)
	}
	for {
		if _, c := count(t, n, "/short/", 0); c == 0 {
			break
		}
		if time.Since(restarted) > 8*time.Second {
			t.Fatal("short lease's keys not deleted after the restart")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if d := time.Since(restarted); d < 2900*time.Millisecond || d > 3*time.Second+expiryLag {
		t.Fatalf("short lease expired %v after the restart, want about 3 s", d)
	}
	deleteRevision(t, n, "/short/", 100)
}

// Leases granted, renewed, revoked and expiring concurrently: the lessor
// ends up knowing exactly the leases storage holds.
func TestLeaseConcurrentGrantRevokeExpire(t *testing.T) {
	n := startNode(t, t.TempDir(), nodeOpts{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				id := int64(w*1000 + i + 1)
				if _, err := n.lc.LeaseGrant(ctx(t), &pb.LeaseGrantRequest{ID: id, TTL: 2}); err != nil {
					t.Error(err)
					return
				}
				n.kv.Put(ctx(t), &pb.PutRequest{Key: []byte(fmt.Sprintf("/c/%d", id)), Value: []byte("v"), Lease: id})
				switch i % 3 {
				case 0:
					n.lc.LeaseRevoke(ctx(t), &pb.LeaseRevokeRequest{ID: id})
				case 1:
					n.cli.KeepAliveOnce(ctx(t), clientv3.LeaseID(id))
				}
			}
		}()
	}
	wg.Wait()
	check := func() {
		t.Helper()
		ls, err := n.lc.LeaseLeases(ctx(t), &pb.LeaseLeasesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var got, want []int64
		for _, l := range ls.Leases {
			got = append(got, l.ID)
		}
		for _, l := range n.store.Leases() {
			want = append(want, l.ID)
		}
		sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("lessor knows %v, storage holds %v", got, want)
		}
	}
	check()
	time.Sleep(3500 * time.Millisecond)
	check()
	if len(n.store.Leases()) != 0 {
		t.Fatalf("%d leases left after expiry", len(n.store.Leases()))
	}
	if _, c := count(t, n, "/c/", 0); c != 0 {
		t.Fatalf("%d keys left after expiry", c)
	}
}

// expiryLag is how late an expiry may be observed: the lessor deletes at
// the TTL, but the test polls, and a loaded CI machine delays timers,
// proposals and fsyncs.
const expiryLag = 2 * time.Second

package etcdapi

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	gogoproto "github.com/gogo/protobuf/proto"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/sett-dev/sett/replication"
	"github.com/sett-dev/sett/storage"
	"github.com/sett-dev/sett/watchhub"
)

// watchNode is a store, its applier, a watch hub and a gRPC server with
// the KV and Watch services.
type watchNode struct {
	store *storage.Store
	local *replication.Node
	hub   *watchhub.Hub
	cfg   Config
	kv    pb.KVClient
	watch pb.WatchClient
	cli   *clientv3.Client
}

func startWatchNode(t *testing.T, cfg Config, hcfg watchhub.Config) *watchNode {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	opts := storage.DefaultOptions(t.TempDir())
	opts.UnsafeNoSync = true
	opts.Logger = quiet
	store, err := storage.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	hcfg.Logger = quiet
	n := &watchNode{store: store, hub: watchhub.New(store, hcfg)}
	if n.local, err = replication.StartSingle(store, opts.Dir, quiet, n.hub.Notify); err != nil {
		t.Fatal(err)
	}
	cfg.ClusterID, cfg.MemberID = 0xc1, 0xe1
	api := New(cfg, store, n.local)
	n.cfg = api.cfg
	srv := grpc.NewServer()
	pb.RegisterKVServer(srv, api.KV())
	pb.RegisterWatchServer(srv, api.Watch(n.hub, quiet))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<30)))
	if err != nil {
		t.Fatal(err)
	}
	n.kv, n.watch = pb.NewKVClient(conn), pb.NewWatchClient(conn)
	n.cli, err = clientv3.New(clientv3.Config{Endpoints: []string{l.Addr().String()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.cli.Close()
		conn.Close()
		n.hub.Close()
		srv.Stop()
		n.local.Stop()
		store.Close()
	})
	return n
}

func (n *watchNode) put(t *testing.T, k, v string) int64 {
	t.Helper()
	r, err := n.kv.Put(context.Background(), &pb.PutRequest{Key: []byte(k), Value: []byte(v)})
	if err != nil {
		t.Fatal(err)
	}
	return r.Header.Revision
}

// watchStream opens a raw Watch stream.
func (n *watchNode) watchStream(t *testing.T) (pb.Watch_WatchClient, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ws, err := n.watch.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cancel)
	return ws, cancel
}

// watchRecv receives one response within a few seconds.
func watchRecv(t *testing.T, ws pb.Watch_WatchClient) *pb.WatchResponse {
	t.Helper()
	type res struct {
		r   *pb.WatchResponse
		err error
	}
	c := make(chan res, 1)
	go func() { r, err := ws.Recv(); c <- res{r, err} }()
	select {
	case r := <-c:
		if r.err != nil {
			t.Fatalf("Recv: %v", r.err)
		}
		return r.r
	case <-time.After(5 * time.Second):
		t.Fatal("no watch response")
		return nil
	}
}

func watchCreate(key string, mod func(*pb.WatchCreateRequest)) *pb.WatchRequest {
	c := &pb.WatchCreateRequest{Key: []byte(key)}
	if mod != nil {
		mod(c)
	}
	return &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: c}}
}

func wantWatchResp(t *testing.T, got, want *pb.WatchResponse) {
	t.Helper()
	if !gogoproto.Equal(got, want) {
		t.Fatalf("response:\n got  %s\n want %s", gogoproto.CompactTextString(got), gogoproto.CompactTextString(want))
	}
}

// Responses carry etcd's full header: cluster, member, term and the
// revision the hub chose, zero for compacted responses as in etcd.
func TestWatchHeadersAndStreamLifecycle(t *testing.T) {
	n := startWatchNode(t, Config{}, watchhub.Config{})
	h := func(rev int64) *pb.ResponseHeader {
		return &pb.ResponseHeader{ClusterId: 0xc1, MemberId: 0xe1, RaftTerm: n.local.Term(), Revision: rev}
	}
	for i := range 5 {
		n.put(t, "a", fmt.Sprint(i))
	}
	cur := n.store.Rev()
	if _, err := n.kv.Compact(context.Background(), &pb.CompactionRequest{Revision: 3}); err != nil {
		t.Fatal(err)
	}
	ws, cancel := n.watchStream(t)
	steps := []struct {
		name string
		req  *pb.WatchRequest
		want []*pb.WatchResponse
	}{
		{"create", watchCreate("a", nil), []*pb.WatchResponse{{Header: h(cur), WatchId: 0, Created: true}}},
		{"create compacted", watchCreate("a", func(c *pb.WatchCreateRequest) { c.StartRevision = 2 }), []*pb.WatchResponse{
			{Header: h(cur), WatchId: 1, Created: true},
			{Header: h(0), WatchId: 1, Canceled: true, CompactRevision: 3},
		}},
		{"progress with a compacted watcher: no answer", &pb.WatchRequest{RequestUnion: &pb.WatchRequest_ProgressRequest{ProgressRequest: &pb.WatchProgressRequest{}}}, nil},
		{"cancel compacted", &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CancelRequest{CancelRequest: &pb.WatchCancelRequest{WatchId: 1}}},
			[]*pb.WatchResponse{{Header: h(cur), WatchId: 1, Canceled: true}}},
		{"progress", &pb.WatchRequest{RequestUnion: &pb.WatchRequest_ProgressRequest{ProgressRequest: &pb.WatchProgressRequest{}}},
			[]*pb.WatchResponse{{Header: h(cur), WatchId: -1}}},
		{"empty request ignored", &pb.WatchRequest{}, nil},
	}
	for _, s := range steps {
		if err := ws.Send(s.req); err != nil {
			t.Fatal(err)
		}
		for _, w := range s.want {
			wantWatchResp(t, watchRecv(t, ws), w)
		}
	}
	// Closing the send side does not end the stream (as etcd).
	if err := ws.CloseSend(); err != nil {
		t.Fatal(err)
	}
	rev := n.put(t, "a", "after")
	r := watchRecv(t, ws)
	if len(r.Events) != 1 || r.Header.Revision != rev || r.Header.MemberId != 0xe1 {
		t.Fatalf("event after CloseSend: %s", gogoproto.CompactTextString(r))
	}
	cancel()
	if _, err := ws.Recv(); status.Code(err) != codes.Canceled {
		t.Fatalf("after cancel: %v", err)
	}
}

// A closing hub (server shutdown) ends streams with etcd's "server
// stopped", an Unavailable error clients retry.
func TestWatchHubCloseEndsStreams(t *testing.T) {
	n := startWatchNode(t, Config{}, watchhub.Config{})
	ws, _ := n.watchStream(t)
	ws.Send(watchCreate("a", nil))
	watchRecv(t, ws)
	n.hub.Close()
	_, err := ws.Recv()
	if s := status.Convert(err); s.Code() != codes.Unavailable || s.Message() != status.Convert(rpctypes.ErrGRPCStopped).Message() {
		t.Fatalf("after hub close: %v", err)
	}
}

// naiveFragments is the fragmentation rule written the slow way: each
// piece re-encoded as it grows.
func naiveFragments(wr *pb.WatchResponse, limit int) []*pb.WatchResponse {
	if wr.Size() < limit || len(wr.Events) < 2 {
		return []*pb.WatchResponse{wr}
	}
	var out []*pb.WatchResponse
	i := 0
	for i < len(wr.Events) {
		p := *wr
		p.Fragment = true
		p.Events = nil
		for i < len(wr.Events) {
			p.Events = append(p.Events, wr.Events[i])
			if len(p.Events) > 1 && p.Size() >= limit {
				p.Events = p.Events[:len(p.Events)-1]
				break
			}
			i++
		}
		if i == len(wr.Events) {
			p.Fragment = false
		}
		out = append(out, &p)
	}
	return out
}

func TestWatchSendFragments(t *testing.T) {
	ev := func(key string, val int, prev bool) *mvccpb.Event {
		e := &mvccpb.Event{Kv: &mvccpb.KeyValue{Key: []byte(key), Value: []byte(strings.Repeat("v", val)), ModRevision: 7, CreateRevision: 3, Version: 2}}
		if prev {
			e.PrevKv = &mvccpb.KeyValue{Key: []byte(key), Value: []byte(strings.Repeat("p", val/2)), ModRevision: 6}
		}
		return e
	}
	many := func(n, val int) []*mvccpb.Event {
		var evs []*mvccpb.Event
		for i := range n {
			evs = append(evs, ev(fmt.Sprintf("key-%04d", i), val+i%13, i%3 == 0))
		}
		return evs
	}
	cases := []struct {
		name   string
		events []*mvccpb.Event
		limit  int
		pieces int // 0: do not check the count
	}{
		{"small response", many(3, 10), 1 << 20, 1},
		{"one huge event is never split", []*mvccpb.Event{ev("k", 5000, true)}, 100, 1},
		{"two events over the limit", many(2, 200), 100, 2},
		{"limit just above the size", many(10, 50), 0, 1},
		{"many events", many(500, 100), 4096, 0},
		{"events of 127 and 128 bytes", many(300, 120), 1000, 0},
		{"varint boundaries", many(200, 16380), 70000, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wr := &pb.WatchResponse{Header: &pb.ResponseHeader{ClusterId: 1, MemberId: 2, Revision: 99, RaftTerm: 2}, WatchId: 5, Events: c.events}
			limit := c.limit
			if limit == 0 {
				limit = wr.Size() + 1
			}
			var got []*pb.WatchResponse
			if err := sendFragments(wr, limit, func(r *pb.WatchResponse) error {
				b, err := r.Marshal() // the copy a real send makes
				if err != nil {
					return err
				}
				var c pb.WatchResponse
				if err := c.Unmarshal(b); err != nil {
					return err
				}
				got = append(got, &c)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			want := naiveFragments(wr, limit)
			if c.pieces != 0 && len(want) != c.pieces {
				t.Fatalf("test bug: reference made %d pieces, want %d", len(want), c.pieces)
			}
			if len(got) != len(want) {
				t.Fatalf("%d pieces, reference %d", len(got), len(want))
			}
			for i := range want {
				wantWatchResp(t, got[i], want[i])
			}
		})
	}
}

// End to end with clientv3: a fragmented catch-up response is reassembled
// by the client; RequestProgress and require-leader streams work.
func TestWatchClientV3(t *testing.T) {
	n := startWatchNode(t, Config{MaxRequestBytes: 4096}, watchhub.Config{})
	val := strings.Repeat("x", 2000)
	for i := range 600 {
		n.put(t, fmt.Sprintf("/r/%03d", i%50), val)
	}
	cur := n.store.Rev()

	t.Run("fragmented catch-up", func(t *testing.T) {
		// One catch-up response of 600 revisions is ~1.3 MB, over the
		// 4096 + 512 KiB fragmentation limit.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		wc := n.cli.Watch(ctx, "/r/", clientv3.WithPrefix(), clientv3.WithRev(2), clientv3.WithFragment())
		got := 0
		for got < 600 {
			select {
			case r := <-wc:
				if err := r.Err(); err != nil {
					t.Fatal(err)
				}
				got += len(r.Events)
			case <-time.After(5 * time.Second):
				t.Fatalf("%d of 600 events", got)
			}
		}
		// The raw stream shows the pieces.
		ws, _ := n.watchStream(t)
		ws.Send(watchCreate("/r/", func(c *pb.WatchCreateRequest) {
			c.RangeEnd, c.StartRevision, c.Fragment = []byte("/r0"), 2, true
		}))
		watchRecv(t, ws)
		pieces, events := 0, 0
		for {
			r := watchRecv(t, ws)
			pieces++
			events += len(r.Events)
			if r.Size() > n.cfg.MaxRequestBytes+GRPCOverheadBytes {
				t.Fatalf("piece of %d bytes", r.Size())
			}
			if !r.Fragment {
				break
			}
		}
		if pieces < 2 || events != 600 {
			t.Fatalf("%d pieces with %d events", pieces, events)
		}
	})
	t.Run("progress and require leader", func(t *testing.T) {
		ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(context.Background()))
		defer cancel()
		wc := n.cli.Watch(ctx, "/p", clientv3.WithCreatedNotify())
		if r := <-wc; !r.Created {
			t.Fatalf("want created: %+v", r)
		}
		if err := n.cli.RequestProgress(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-wc:
			if !r.IsProgressNotify() || r.Header.Revision != cur {
				t.Fatalf("want progress at %d: %+v", cur, r)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no progress notification")
		}
	})
}

// progress_notify responses arrive every interval.
func TestWatchProgressNotifyInterval(t *testing.T) {
	n := startWatchNode(t, Config{}, watchhub.Config{ProgressInterval: 100 * time.Millisecond})
	rev := n.put(t, "a", "1")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wc := n.cli.Watch(ctx, "a", clientv3.WithProgressNotify())
	start := time.Now()
	for range 3 {
		select {
		case r := <-wc:
			if !r.IsProgressNotify() || r.Header.Revision != rev {
				t.Fatalf("want progress at %d: %+v", rev, r)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("no progress notification")
		}
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 2*time.Second {
		t.Fatalf("3 notifications in %v at a 100-110 ms interval", d)
	}
}

package compat

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sett-dev/sett/internal/testproc"
)

// TestMaxConcurrentStreams: with --max-concurrent-streams=2 a client
// connection holds two open Watch streams, and a third waits (here until
// its deadline) until one closes, on etcd and sett alike.
func TestMaxConcurrentStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and sett")
	}
	for _, kind := range []string{"etcd", "sett"} {
		opts := testproc.Options{ExtraArgs: []string{"--max-concurrent-streams=2", "--log-level=error"}}
		p := startKind(t, kind, opts)
		conn, err := grpc.NewClient(p.ClientAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		w := pb.NewWatchClient(conn)
		open := func(timeout time.Duration) (context.CancelFunc, error) {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			s, err := w.Watch(ctx)
			if err == nil {
				err = s.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{Key: []byte("k")}}})
			}
			if err == nil {
				_, err = s.Recv() // the created response: the stream is open on the server
			}
			return cancel, err
		}
		var cancels []context.CancelFunc
		for i := range 2 {
			cancel, err := open(10 * time.Second)
			if err != nil {
				t.Fatalf("%s: stream %d: %v", kind, i+1, err)
			}
			cancels = append(cancels, cancel)
		}
		cancel, err := open(time.Second)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) && (err == nil || !containsAny(err.Error(), "DeadlineExceeded", "deadline exceeded")) {
			t.Errorf("%s: a third stream over the limit: %v, want it to wait", kind, err)
		}
		cancels[0]()
		cancel, err = open(10 * time.Second)
		if err != nil {
			t.Errorf("%s: a stream after one closed: %v", kind, err)
		}
		cancel()
		cancels[1]()
		conn.Close()
		p.Stop()
	}
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

package main

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// flakyKV fails the first failures Ranges with Unavailable (a server that
// listens but has no leader yet), then answers.
type flakyKV struct {
	pb.UnimplementedKVServer
	failures int32
	calls    atomic.Int32
}

func (k *flakyKV) Range(context.Context, *pb.RangeRequest) (*pb.RangeResponse, error) {
	if k.calls.Add(1) <= k.failures {
		return nil, status.Error(codes.Unavailable, "no leader")
	}
	return &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: 1}}, nil
}

// serveAfter reserves a port, and serves kv on it after delay.
func serveAfter(t *testing.T, delay time.Duration, kv pb.KVServer) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	g := grpc.NewServer()
	pb.RegisterKVServer(g, kv)
	t.Cleanup(g.Stop)
	go func() {
		time.Sleep(delay)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("listen again on %s: %v", addr, err)
			return
		}
		g.Serve(l)
	}()
	return addr
}

func TestWaitServing(t *testing.T) {
	tests := []struct {
		name     string
		delay    time.Duration
		failures int32
	}{
		{"serving at once", 0, 0},
		{"listens late", 300 * time.Millisecond, 0},
		{"listens late, then not ready", 300 * time.Millisecond, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kv := &flakyKV{failures: tt.failures}
			start := time.Now()
			addr := serveAfter(t, tt.delay, kv)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			ready, err := waitServing(ctx, addr)
			if err != nil {
				t.Fatal(err)
			}
			if got := ready.Sub(start); got < tt.delay {
				t.Errorf("ready after %v, before the server listened (%v)", got, tt.delay)
			}
			// Generous: a slow retry (gRPC's default 1s backoff) would
			// still pass a tight bound on an idle machine by luck.
			if got := ready.Sub(start); got > tt.delay+5*time.Second {
				t.Errorf("ready after %v, long after the server listened (%v)", got, tt.delay)
			}
			if calls := kv.calls.Load(); calls != tt.failures+1 {
				t.Errorf("%d Range calls, want %d", calls, tt.failures+1)
			}
		})
	}
}

func TestWaitServingGivesUp(t *testing.T) {
	kv := &flakyKV{failures: 1 << 30}
	addr := serveAfter(t, 0, kv)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := waitServing(ctx, addr); err == nil {
		t.Fatal("waitServing succeeded against a server that never answers")
	}
}

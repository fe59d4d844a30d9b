package server

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

type fakeRaft struct {
	leader  atomic.Uint64
	learner atomic.Bool
}

func (f *fakeRaft) Leader() uint64         { return f.leader.Load() }
func (f *fakeRaft) IsLeader() bool         { return false }
func (f *fakeRaft) IsLearner() bool        { return f.learner.Load() }
func (f *fakeRaft) CommittedIndex() uint64 { return 0 }
func (f *fakeRaft) AppliedIndex() uint64   { return 0 }
func (f *fakeRaft) LeaderChanges() int64   { return 0 }

type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s fakeStream) Context() context.Context { return s.ctx }

func requireLeaderCtx() context.Context {
	return metadata.NewIncomingContext(context.Background(), metadata.Pairs(rpctypes.MetadataRequireLeaderKey, rpctypes.MetadataHasLeader))
}

func TestRequireLeader(t *testing.T) {
	raft := &fakeRaft{}
	ready := make(chan struct{})
	close(ready)
	f := &frontend{raft: raft, ready: ready}
	f.cfg.ElectionTimeout = 10 * time.Millisecond
	ok := func(ctx context.Context, req any) (any, error) { return "ok", nil }

	tests := []struct {
		name   string
		ctx    context.Context
		leader uint64
		want   error
	}{
		{"no leader, required", requireLeaderCtx(), 0, rpctypes.ErrGRPCNoLeader},
		{"no leader, not required", context.Background(), 0, nil},
		{"leader, required", requireLeaderCtx(), 7, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raft.leader.Store(tt.leader)
			_, err := f.waitReadyUnary(tt.ctx, nil, &grpc.UnaryServerInfo{}, ok)
			if !errors.Is(err, tt.want) {
				t.Fatalf("unary: %v, want %v", err, tt.want)
			}
			err = f.waitReadyStream(nil, fakeStream{ctx: tt.ctx}, &grpc.StreamServerInfo{}, func(any, grpc.ServerStream) error { return nil })
			if !errors.Is(err, tt.want) {
				t.Fatalf("stream: %v, want %v", err, tt.want)
			}
		})
	}

	// A learner serves Status and serializable ranges only, as etcd's.
	raft.leader.Store(7)
	raft.learner.Store(true)
	for _, c := range []struct {
		req  any
		want error
	}{
		{&pb.StatusRequest{}, nil},
		{&pb.RangeRequest{Serializable: true}, nil},
		{&pb.RangeRequest{}, rpctypes.ErrGRPCNotSupportedForLearner},
		{&pb.PutRequest{}, rpctypes.ErrGRPCNotSupportedForLearner},
	} {
		if _, err := f.waitReadyUnary(context.Background(), c.req, &grpc.UnaryServerInfo{}, ok); !errors.Is(err, c.want) {
			t.Errorf("learner, %T: %v, want %v", c.req, err, c.want)
		}
	}
	err := f.waitReadyStream(nil, fakeStream{ctx: context.Background()}, &grpc.StreamServerInfo{FullMethod: "/etcdserverpb.Watch/Watch"}, func(any, grpc.ServerStream) error { return nil })
	if !errors.Is(err, rpctypes.ErrGRPCNotSupportedForLearner) {
		t.Errorf("learner watch: %v", err)
	}
	raft.learner.Store(false)

	// A stream that requires a leader ends once the leader is gone for
	// three election timeouts.
	raft.leader.Store(7)
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- f.waitReadyStream(nil, fakeStream{ctx: requireLeaderCtx()}, &grpc.StreamServerInfo{}, func(_ any, ss grpc.ServerStream) error {
			close(started)
			<-ss.Context().Done()
			return ss.Context().Err()
		})
	}()
	<-started
	raft.leader.Store(0)
	select {
	case err := <-done:
		if !errors.Is(err, rpctypes.ErrGRPCNoLeader) {
			t.Fatalf("stream ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("stream not ended after the leader was lost")
	}
}

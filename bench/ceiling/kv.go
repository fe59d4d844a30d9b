package main

import (
	"context"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// memKV answers Put and Range from a map; every other KV call is
// Unimplemented. Each put bumps one revision counter, so responses carry
// headers of the same shape as a real server's.
type memKV struct {
	pb.UnimplementedKVServer

	mu  sync.RWMutex
	rev int64
	kvs map[string]*mvccpb.KeyValue
}

func newMemKV() *memKV {
	return &memKV{rev: 1, kvs: make(map[string]*mvccpb.KeyValue)}
}

func (m *memKV) Put(_ context.Context, r *pb.PutRequest) (*pb.PutResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rev++
	resp := &pb.PutResponse{}
	prev, ok := m.kvs[string(r.Key)]
	kv := &mvccpb.KeyValue{Key: r.Key, Value: r.Value, Lease: r.Lease, ModRevision: m.rev, CreateRevision: m.rev, Version: 1}
	if ok {
		kv.CreateRevision = prev.CreateRevision
		kv.Version = prev.Version + 1
		if r.PrevKv {
			resp.PrevKv = prev
		}
	}
	m.kvs[string(r.Key)] = kv
	resp.Header = m.header()
	return resp, nil
}

// Range serves single-key reads only: that is all the benchmark's range
// command sends for one key.
func (m *memKV) Range(_ context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	if len(r.RangeEnd) > 0 {
		return nil, status.Error(codes.Unimplemented, "ceiling: only single-key ranges")
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	resp := &pb.RangeResponse{Header: m.header()}
	if kv, ok := m.kvs[string(r.Key)]; ok {
		resp.Count = 1
		if !r.CountOnly {
			resp.Kvs = []*mvccpb.KeyValue{kv}
		}
	}
	return resp, nil
}

// header must be called with mu held.
func (m *memKV) header() *pb.ResponseHeader {
	return &pb.ResponseHeader{ClusterId: 1, MemberId: 1, Revision: m.rev, RaftTerm: 1}
}

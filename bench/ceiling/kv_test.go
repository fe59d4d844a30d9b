package main

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// startCeiling serves the ceiling on a free port and returns a KV client.
func startCeiling(t *testing.T) pb.KVClient {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := newGRPCServer()
	go g.Serve(l)
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return pb.NewKVClient(conn)
}

func TestCeilingPutThenRange(t *testing.T) {
	kv := startCeiling(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	p1, err := kv.Put(ctx, &pb.PutRequest{Key: []byte("k"), Value: []byte("v1")})
	if err != nil {
		t.Fatal(err)
	}
	p2, err := kv.Put(ctx, &pb.PutRequest{Key: []byte("k"), Value: []byte("v2"), PrevKv: true})
	if err != nil {
		t.Fatal(err)
	}
	if p2.Header.Revision != p1.Header.Revision+1 {
		t.Errorf("revisions %d then %d, want consecutive", p1.Header.Revision, p2.Header.Revision)
	}
	if p2.PrevKv == nil || string(p2.PrevKv.Value) != "v1" {
		t.Errorf("prev kv = %v, want value v1", p2.PrevKv)
	}

	tests := []struct {
		name      string
		req       *pb.RangeRequest
		wantCount int64
		wantKvs   int
		wantCode  codes.Code
	}{
		{"existing key, linearizable", &pb.RangeRequest{Key: []byte("k")}, 1, 1, codes.OK},
		{"existing key, serializable", &pb.RangeRequest{Key: []byte("k"), Serializable: true}, 1, 1, codes.OK},
		{"count only", &pb.RangeRequest{Key: []byte("k"), CountOnly: true}, 1, 0, codes.OK},
		{"missing key", &pb.RangeRequest{Key: []byte("nope")}, 0, 0, codes.OK},
		{"range end", &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("z")}, 0, 0, codes.Unimplemented},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := kv.Range(ctx, tt.req)
			if status.Code(err) != tt.wantCode {
				t.Fatalf("err = %v, want code %v", err, tt.wantCode)
			}
			if err != nil {
				return
			}
			if resp.Count != tt.wantCount || len(resp.Kvs) != tt.wantKvs {
				t.Fatalf("count %d with %d kvs, want %d with %d", resp.Count, len(resp.Kvs), tt.wantCount, tt.wantKvs)
			}
			if tt.wantKvs == 1 {
				got := resp.Kvs[0]
				if !bytes.Equal(got.Value, []byte("v2")) || got.Version != 2 || got.ModRevision != p2.Header.Revision || got.CreateRevision != p1.Header.Revision {
					t.Errorf("kv = %v, want v2 at version 2 created at %d, modified at %d", got, p1.Header.Revision, p2.Header.Revision)
				}
			}
		})
	}
}

func TestCeilingOtherCallsUnimplemented(t *testing.T) {
	kv := startCeiling(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := kv.Txn(ctx, &pb.TxnRequest{}); status.Code(err) != codes.Unimplemented {
		t.Fatalf("Txn: err = %v, want Unimplemented", err)
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, "127.0.0.1:0") }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v after cancel, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}

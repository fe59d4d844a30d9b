package main

import (
	"context"
	"fmt"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
)

// pollInterval is the pause between failed attempts; it bounds the
// measurement's error from above.
const pollInterval = 2 * time.Millisecond

// probeKey is read by every attempt; it need not exist.
var probeKey = []byte("sett-bench-startup-probe")

// waitServing returns the instant a linearizable Get against endpoint first
// succeeded. Connection attempts back off by at most a few milliseconds
// (gRPC's default backoff starts at one second), so a server that starts
// listening late is noticed at once.
func waitServing(ctx context.Context, endpoint string) (time.Time, error) {
	conn, err := grpc.NewClient(endpoint,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: pollInterval, Multiplier: 1, MaxDelay: pollInterval},
			MinConnectTimeout: time.Second,
		}),
	)
	if err != nil {
		return time.Time{}, err
	}
	defer conn.Close()
	kv := pb.NewKVClient(conn)
	var lastErr error
	for {
		attempt, cancel := context.WithTimeout(ctx, time.Second)
		_, err := kv.Range(attempt, &pb.RangeRequest{Key: probeKey}, grpc.WaitForReady(true))
		cancel()
		if err == nil {
			return time.Now(), nil
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("%w (last error: %v)", ctx.Err(), lastErr)
		case <-time.After(pollInterval):
		}
	}
}

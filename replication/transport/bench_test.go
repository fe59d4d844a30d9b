package transport

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

// BenchmarkSend measures MsgApp throughput, one 300-byte entry per message,
// between two transports on loopback. The sender keeps at most window
// messages in flight, as raft's inflight limit does, so none are dropped.
func BenchmarkSend(b *testing.B) {
	for _, perSend := range []int{1, 64} {
		b.Run(map[int]string{1: "1-per-Send", 64: "64-per-Send"}[perSend], func(b *testing.B) {
			benchmarkSend(b, perSend)
		})
	}
}

func benchmarkSend(b *testing.B, perSend int) {
	const window = 2048
	a, c := newMember(b, 1, memberOpts{}), newMember(b, 2, memberOpts{})
	var processed atomic.Int64
	var mu sync.Mutex
	cond := sync.NewCond(&mu)
	c.raft.onProcess = func(context.Context, raftpb.Message) error {
		if processed.Add(1)%256 == 0 {
			mu.Lock()
			cond.Broadcast()
			mu.Unlock()
		}
		return errSkipRecord
	}
	connectAll(a, c)
	waitActive(b, a, c)
	payload := bytes.Repeat([]byte("v"), 300)
	msgs := make([]raftpb.Message, perSend)

	b.SetBytes(300)
	b.ResetTimer()
	start := time.Now()
	for sent := 0; sent < b.N; {
		n := min(perSend, b.N-sent)
		for i := range n {
			msgs[i] = app(a.id, c.id, uint64(sent+i), payload)
		}
		mu.Lock()
		for int64(sent+n)-processed.Load() > window {
			cond.Wait()
		}
		mu.Unlock()
		a.tr.Send(msgs[:n])
		sent += n
	}
	mu.Lock()
	for processed.Load() < int64(b.N) {
		if a.raft.unreachableCount(c.id) > 0 {
			mu.Unlock()
			b.Fatal("messages dropped")
		}
		mu.Unlock()
		time.Sleep(100 * time.Microsecond)
		mu.Lock()
	}
	mu.Unlock()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

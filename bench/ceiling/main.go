// Command ceiling is the upper bound of the benchmark figures: etcd's KV
// service (Put and Range only) over the same gRPC stack as sett, backed by
// a map in memory, with no log, no fsync and no revisions kept. Whatever
// sett loses against it is spent in sett itself rather than in gRPC,
// protobuf or the benchmark client.
//
// Usage: ceiling --listen=127.0.0.1:PORT
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve gRPC on")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *listen); err != nil {
		slog.Error("ceiling failed", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	g := newGRPCServer()
	errc := make(chan error, 1)
	go func() { errc <- g.Serve(l) }()
	fmt.Fprintf(os.Stderr, "ceiling serving on %s\n", l.Addr())
	select {
	case <-ctx.Done():
		g.Stop()
		return nil
	case err := <-errc:
		if errors.Is(err, grpc.ErrServerStopped) {
			return nil
		}
		return err
	}
}

// newGRPCServer takes the server options of sett's client listener that
// affect throughput (stream limits, reused stream workers), so the ceiling
// measures the same transport.
func newGRPCServer() *grpc.Server {
	g := grpc.NewServer(
		grpc.MaxRecvMsgSize(2*1024*1024),
		grpc.MaxSendMsgSize(math.MaxInt32),
		grpc.MaxConcurrentStreams(math.MaxUint32),
		grpc.NumStreamWorkers(uint32(16*runtime.GOMAXPROCS(0))),
	)
	pb.RegisterKVServer(g, newMemKV())
	return g
}

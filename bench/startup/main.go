// Command startup measures a server's start-up time: it polls an etcd
// endpoint with linearizable Gets until one succeeds and prints the time
// from a given instant (the server's launch, taken by the caller just
// before starting it) to that success, in milliseconds.
//
// Usage: startup --endpoint=127.0.0.1:PORT --since=UNIX_MICROSECONDS [--timeout=5m]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"
)

func main() {
	endpoint := flag.String("endpoint", "", "host:port of the server's client gRPC listener")
	since := flag.Int64("since", 0, "launch instant of the server, microseconds since the Unix epoch (0: now)")
	timeout := flag.Duration("timeout", 5*time.Minute, "give up after this long")
	flag.Parse()
	if *endpoint == "" {
		fmt.Fprintln(os.Stderr, "startup: --endpoint is required")
		os.Exit(2)
	}
	start := time.Now()
	if *since > 0 {
		start = time.UnixMicro(*since)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	ready, err := waitServing(ctx, *endpoint)
	if err != nil {
		slog.Error("server did not serve a linearizable Get", "endpoint", *endpoint, "err", err)
		os.Exit(1)
	}
	fmt.Printf("%.1f\n", float64(ready.Sub(start).Microseconds())/1000)
}

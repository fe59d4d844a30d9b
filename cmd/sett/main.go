// Command sett is an etcd v3 wire-compatible server. It accepts etcd's
// flags, so it starts wherever an etcd command line is written.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/sett-dev/sett/internal/logging"
	"github.com/sett-dev/sett/server"
	"github.com/sett-dev/sett/storage"
	"github.com/sett-dev/sett/version"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) > 0 && args[0] == "snapshot" {
		return server.SnapshotCommand(args[1:], os.Stdout, os.Stderr)
	}
	o, err := parseOptions(args, os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sett:", err)
		return 2
	}
	if o.version {
		fmt.Printf("sett Version: %s\netcd API Version: %s\n", version.Sett, version.Server)
		return 0
	}
	if os.Getenv("GOMEMLIMIT") == "" && o.memoryLimit > 0 {
		debug.SetMemoryLimit(o.memoryLimit)
	}
	o.logging.Level = o.logLevel
	log, logClose, err := logging.New(o.logging)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sett:", err)
		return 2
	}
	defer logClose.Close()
	for _, name := range o.ignored {
		log.Warn("etcd flag is accepted but has no effect in sett", "flag", name)
	}
	o.cfg.Logger = log

	srv, err := server.Start(o.cfg)
	if err != nil {
		if errors.Is(err, storage.ErrDataDirInUse) {
			fmt.Fprintf(os.Stderr, "sett: %v (is another sett running on it?)\n", err)
		} else {
			fmt.Fprintln(os.Stderr, "sett:", err)
		}
		return 1
	}
	readyCtx, readyCancel := context.WithCancel(context.Background())
	defer readyCancel()
	go func() {
		if srv.ServeReady(readyCtx) != nil {
			return
		}
		// etcd's lines: it notifies systemd once it serves clients.
		log.Info("notifying init daemon")
		if err := sdNotify(os.Getenv, "READY=1"); err != nil && !errors.Is(err, errNoNotifySocket) {
			log.Error("failed to notify systemd for readiness", "error", err)
			return
		}
		log.Info("successfully notified init daemon")
	}()
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGTERM, syscall.SIGINT)
	code := 0
	select {
	case sig := <-sigc:
		log.Info("shutting down", "signal", sig.String())
	case err := <-srv.Err():
		log.Error("listener failed", "err", err)
		code = 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Error("shutdown", "err", err)
		return 1
	}
	log.Info("stopped")
	return code
}

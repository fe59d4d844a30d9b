package server

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"github.com/sett-dev/sett/storage"
)

// snapshotExport is `sett snapshot export`: it writes a stopped sett data
// directory (--data-dir) or a sett snapshot file (`etcdctl snapshot save`
// against sett) as an etcd 3.6 snapshot file, which `etcdutl snapshot
// restore` turns into an etcd data directory (see storage.ExportEtcd).
func snapshotExport(args []string, stdout, stderr io.Writer, usage func()) int {
	fs := flag.NewFlagSet("sett snapshot export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "", "Sett data directory to export (the server must be stopped); or give a sett snapshot file instead.")
	out := fs.String("out", "", "Path of the etcd snapshot file to write (replaced if it exists).")
	skipHash := fs.Bool("skip-hash-check", false, "Ignore the sett snapshot file's SHA-256 trailer.")
	quiet := fs.Bool("quiet", false, "Do not show progress.")
	var file string
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		file, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if file == "" && fs.NArg() == 1 {
		file = fs.Arg(0)
	} else if fs.NArg() > 0 {
		usage()
		return 2
	}
	if *out == "" || (file == "") == (*dataDir == "") {
		fmt.Fprintln(stderr, "Error: give --out and exactly one of a sett snapshot file or --data-dir")
		usage()
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	opts := storage.ExportOptions{Logger: log}
	if !*quiet && isTerminal(stderr) {
		opts.Progress = newProgress(stderr, "exported", time.Now).report
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var (
		res storage.ExportResult
		err error
	)
	if file != "" {
		res, err = storage.ExportEtcdFromSnapshot(ctx, file, *out, *skipHash, opts)
	} else {
		res, err = storage.ExportEtcdFromDir(ctx, *dataDir, *out, opts)
	}
	if err != nil {
		fmt.Fprintln(stderr, "Error:", err)
		return 1
	}
	fmt.Fprintf(stdout, "exported etcd snapshot %s at revision %d (compacted at %d; %d revision entries, %d leases, %s)\n",
		*out, res.Revision, res.CompactRevision, res.Entries, res.Leases, humanBytes(res.Size))
	return 0
}

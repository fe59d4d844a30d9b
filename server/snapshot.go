package server

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/sett-dev/sett/storage"
	"github.com/sett-dev/sett/version"
)

// SnapshotCommand runs `sett snapshot restore`, `sett snapshot status`
// and `sett snapshot export`, and returns the exit code. Restore and status
// are sett's counterparts of etcdutl's: restore creates a new data
// directory from a file written by `etcdctl snapshot save` against sett,
// or imports an etcd snapshot (`etcdctl snapshot save` against etcd) or an
// etcd data dir's member/snap/db (see storage.ImportEtcd); status checks a
// sett snapshot file and prints its hash (HashKV at its revision),
// revision, live keys, size and storage version. Export writes sett's data
// as an etcd snapshot file for `etcdutl snapshot restore` (see
// snapshotExport).
func SnapshotCommand(args []string, stdout, stderr io.Writer) int {
	usage := func() {
		fmt.Fprintln(stderr, `Usage: sett snapshot restore <filename> --data-dir <dir> [--bump-revision N] [--mark-compacted] [--skip-hash-check] [--quiet]
       sett snapshot status <filename> [-w simple|json]
       sett snapshot export (<sett snapshot file> | --data-dir <dir>) --out <etcd snapshot file> [--skip-hash-check] [--quiet]`)
	}
	if len(args) > 0 && args[0] == "status" {
		return snapshotStatus(args[1:], stdout, stderr, usage)
	}
	if len(args) > 0 && args[0] == "export" {
		return snapshotExport(args[1:], stdout, stderr, usage)
	}
	if len(args) == 0 || args[0] != "restore" {
		usage()
		return 2
	}
	fs := flag.NewFlagSet("sett snapshot restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "", "Path to the data directory to create (must not exist or be empty).")
	name := fs.String("name", "default", "Member name; the data directory defaults to <name>.sett.")
	bump := fs.Int64("bump-revision", 0, "How much to increase the latest revision after restore.")
	markCompacted := fs.Bool("mark-compacted", false, "Mark the latest revision after restore as the point of scheduled compaction (required if --bump-revision > 0, disallowed otherwise).")
	skipHash := fs.Bool("skip-hash-check", false, "Ignore the snapshot's SHA-256 trailer.")
	quiet := fs.Bool("quiet", false, "Do not show progress while importing an etcd snapshot.")
	// Flags etcdutl takes that mean nothing here: membership comes from
	// sett's own flags when it starts.
	for _, n := range []string{"initial-cluster", "initial-cluster-token", "initial-advertise-peer-urls", "wal-dir"} {
		fs.String(n, "", "Accepted for etcdutl compatibility; ignored.")
	}
	// etcdutl takes the file before the flags.
	rest := args[1:]
	var file string
	if len(rest) > 0 && len(rest[0]) > 0 && rest[0][0] != '-' {
		file, rest = rest[0], rest[1:]
	}
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if file = snapshotFile(fs, file); file == "" {
		usage()
		return 2
	}
	// etcdutl takes the two flags together or not at all, and says so
	// with its exit code for bad arguments.
	if (*bump == 0 && *markCompacted) || (*bump != 0 && !*markCompacted) {
		fmt.Fprintln(stderr, "Error: --mark-compacted required if --revision-bump > 0")
		return exitBadArgs
	}
	dir := *dataDir
	if dir == "" {
		dir = *name + ".sett"
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if isEtcd, err := storage.IsEtcdDB(file); err != nil {
		fmt.Fprintln(stderr, "Error:", err)
		return 1
	} else if isEtcd {
		return importEtcd(file, dir, storage.ImportOptions{
			SkipHashCheck: *skipHash, BumpRevision: *bump, MarkCompacted: *markCompacted, Logger: log,
		}, *quiet, stdout, stderr)
	}
	rev, err := storage.RestoreSnapshot(file, dir, storage.RestoreOptions{
		SkipHashCheck: *skipHash, BumpRevision: *bump, MarkCompacted: *markCompacted, Logger: log,
	})
	if err != nil {
		fmt.Fprintln(stderr, "Error:", err)
		return 1
	}
	fmt.Fprintf(stdout, "restored snapshot %s into %s at revision %d\n", file, dir, rev)
	return 0
}

// exitBadArgs is etcdutl's exit code for bad arguments.
const exitBadArgs = 128

func snapshotStatus(args []string, stdout, stderr io.Writer, usage func()) int {
	fs := flag.NewFlagSet("sett snapshot status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	format := fs.String("w", "simple", "Output format: simple or json.")
	fs.StringVar(format, "write-out", "simple", "Output format: simple or json.")
	var file string
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		file, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if file = snapshotFile(fs, file); file == "" {
		usage()
		return 2
	}
	info, err := storage.InspectSnapshot(file, version.Storage)
	if err != nil {
		fmt.Fprintln(stderr, "Error:", err)
		return 1
	}
	switch *format {
	case "json":
		b, _ := json.Marshal(info)
		fmt.Fprintln(stdout, string(b))
	case "simple":
		fmt.Fprintf(stdout, "%x, %d, %d, %s, %s\n", info.Hash, info.Revision, info.TotalKey, humanBytes(info.TotalSize), info.Version)
	default:
		fmt.Fprintf(stderr, "Error: unsupported output format %q\n", *format)
		return 2
	}
	return 0
}

// humanBytes formats a size as etcdutl does (SI units, go-humanize style).
func humanBytes(n int64) string {
	if n < 10 {
		return fmt.Sprintf("%d B", n)
	}
	units := []string{"B", "kB", "MB", "GB", "TB", "PB"}
	f := float64(n)
	i := 0
	for f >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d B", n)
	}
	if f < 10 {
		return fmt.Sprintf("%.1f %s", f, units[i])
	}
	return fmt.Sprintf("%.0f %s", f, units[i])
}

// snapshotFile is the one snapshot file a subcommand takes, given before
// its flags or as its only argument after them; "" when that is not so.
func snapshotFile(fs *flag.FlagSet, before string) string {
	switch {
	case before != "" && fs.NArg() == 0:
		return before
	case before == "" && fs.NArg() == 1:
		return fs.Arg(0)
	}
	return ""
}

package main

import (
	"flag"

	"github.com/sett-dev/sett/autocompact"
	"github.com/sett-dev/sett/server"
)

// addCompactionFlags adds etcd's --auto-compaction-mode and
// --auto-compaction-retention; server.Start checks them, so that a bad
// value fails the start as in etcd (exit status 1).
func addCompactionFlags(fs *flag.FlagSet, c *server.Config) {
	fs.StringVar(&c.AutoCompactionMode, "auto-compaction-mode", autocompact.DefaultMode,
		"How --auto-compaction-retention is read: 'periodic' (a duration; a bare number is hours, e.g. '1' or '30m') or 'revision' (a number of revisions to keep).")
	fs.StringVar(&c.AutoCompactionRetention, "auto-compaction-retention", autocompact.DefaultRetention,
		"How much history auto-compaction keeps (see --auto-compaction-mode); 0 turns auto-compaction off.")
}

package main

import (
	"io"
	"testing"
)

// --auto-compaction-mode and --auto-compaction-retention reach the
// member's config (etcd's defaults: periodic, 0), from flags and from
// ETCD_* variables; server.Start checks them.
func TestCompactionFlags(t *testing.T) {
	for _, tc := range []struct {
		args            []string
		env             map[string]string
		mode, retention string
	}{
		{mode: "periodic", retention: "0"},
		{args: []string{"--auto-compaction-mode=revision", "--auto-compaction-retention=1000"}, mode: "revision", retention: "1000"},
		{args: []string{"--auto-compaction-retention", "30m"}, mode: "periodic", retention: "30m"},
		{env: map[string]string{"ETCD_AUTO_COMPACTION_MODE": "revision", "ETCD_AUTO_COMPACTION_RETENTION": "5"}, mode: "revision", retention: "5"},
		// A bad value is kept for server.Start to refuse with etcd's error.
		{args: []string{"--auto-compaction-mode=foo"}, mode: "foo", retention: "0"},
	} {
		o, err := parseOptions(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if o.cfg.AutoCompactionMode != tc.mode || o.cfg.AutoCompactionRetention != tc.retention || len(o.ignored) != 0 {
			t.Errorf("%v %v: mode %q retention %q ignored %v", tc.args, tc.env, o.cfg.AutoCompactionMode, o.cfg.AutoCompactionRetention, o.ignored)
		}
	}
}

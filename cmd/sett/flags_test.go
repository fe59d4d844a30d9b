package main

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestParseOptions(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "etcd.yaml")
	if err := os.WriteFile(cfgFile, []byte(`
name: infra1
data-dir: /var/lib/etcd
listen-client-urls: http://10.0.0.1:2379,http://127.0.0.1:2379
max-txn-ops: 256
snapshot-count: 10000
client-transport-security:
  cert-file: /x
`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(t *testing.T, o *options)
		wantErr bool
	}{
		{name: "defaults", check: func(t *testing.T, o *options) {
			if o.cfg.Name != "default" || o.cfg.DataDir != "" || o.cfg.MaxTxnOps != 128 || o.cfg.MaxRequestBytes != 1536*1024 {
				t.Fatalf("%+v", o.cfg)
			}
			if !reflect.DeepEqual(o.cfg.ListenClientURLs, []string{"http://localhost:2379"}) {
				t.Fatal(o.cfg.ListenClientURLs)
			}
			if o.cfg.Storage.UnsafeNoSync {
				t.Fatal("fsync is off by default")
			}
		}},
		{name: "etcd flags", args: []string{"--name=n1", "--data-dir", "/d", "--listen-client-urls=http://127.0.0.1:1,http://127.0.0.1:2",
			"--max-txn-ops=10", "--max-request-bytes=100", "--initial-cluster=n1=http://127.0.0.1:3", "--initial-cluster-state=existing"},
			check: func(t *testing.T, o *options) {
				c := o.cfg
				if c.Name != "n1" || c.DataDir != "/d" || c.MaxTxnOps != 10 || c.MaxRequestBytes != 100 ||
					c.InitialCluster != "n1=http://127.0.0.1:3" || c.InitialClusterState != "existing" ||
					len(c.ListenClientURLs) != 2 {
					t.Fatalf("%+v", c)
				}
			}},
		{name: "etcd-only flags are accepted and reported", args: []string{"--auth-token=simple", "--strict-reconfig-check", "--wal-dir", "/w", "--name=x"},
			check: func(t *testing.T, o *options) {
				if !reflect.DeepEqual(o.ignored, []string{"auth-token", "strict-reconfig-check"}) || o.cfg.Name != "x" || o.cfg.Raft.WALDir != "/w" {
					t.Fatalf("ignored %v name %q", o.ignored, o.cfg.Name)
				}
			}},
		{name: "raft flags", args: []string{"--snapshot-count=5", "--heartbeat-interval", "50", "--election-timeout=500", "--snapshot-catchup-entries=7"},
			check: func(t *testing.T, o *options) {
				c := o.cfg
				if c.SnapshotCount != 5 || c.HeartbeatInterval != 50*time.Millisecond || c.ElectionTimeout != 500*time.Millisecond || c.CatchUpEntries != 7 || len(o.ignored) != 0 {
					t.Fatalf("%+v ignored %v", c, o.ignored)
				}
			}},
		{name: "env vars fill unset flags", args: []string{"--name=flag"}, env: map[string]string{"ETCD_NAME": "env", "ETCD_DATA_DIR": "/env"},
			check: func(t *testing.T, o *options) {
				if o.cfg.Name != "flag" || o.cfg.DataDir != "/env" {
					t.Fatalf("%+v", o.cfg)
				}
			}},
		{name: "config file", args: []string{"--config-file", cfgFile},
			check: func(t *testing.T, o *options) {
				c := o.cfg
				if c.Name != "infra1" || c.DataDir != "/var/lib/etcd" || c.MaxTxnOps != 256 || len(c.ListenClientURLs) != 2 {
					t.Fatalf("%+v", c)
				}
			}},
		{name: "unsafe-no-fsync", args: []string{"--unsafe-no-fsync"}, check: func(t *testing.T, o *options) {
			if !o.cfg.Storage.UnsafeNoSync {
				t.Fatal("--unsafe-no-fsync ignored")
			}
		}},
		{name: "unknown flag", args: []string{"--no-such-flag"}, wantErr: true},
		{name: "stray argument", args: []string{"extra"}, wantErr: true},
		{name: "bad number", args: []string{"--max-txn-ops=many"}, wantErr: true},
		{name: "election timeout under 5 heartbeats", args: []string{"--heartbeat-interval=100", "--election-timeout=400"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseOptions(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if tt.wantErr {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, o)
		})
	}
}

package main

import (
	"io"
	"testing"
)

// --wal-dir, --max-learners and --pre-vote reach the member's raft options
// with etcd's defaults (no wal dir, 1 learner, pre-vote on).
func TestRaftFlags(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		wal       string
		learners  int
		noPreVote bool
		force     bool
		wantErr   bool
	}{
		{args: nil, learners: 1},
		{args: []string{"--wal-dir=/w", "--max-learners=3", "--pre-vote=false"}, wal: "/w", learners: 3, noPreVote: true},
		{args: []string{"--pre-vote"}, learners: 1},
		{args: []string{"--force-new-cluster"}, learners: 1, force: true},
		{args: []string{"--force-new-cluster=false"}, learners: 1},
		{args: []string{"--pre-vote=maybe"}, wantErr: true},
	} {
		o, err := parseOptions(tc.args, func(string) string { return "" }, io.Discard)
		if tc.wantErr != (err != nil) {
			t.Fatalf("%v: err %v", tc.args, err)
		}
		if err != nil {
			continue
		}
		r := o.cfg.Raft
		if r.WALDir != tc.wal || r.MaxLearners != tc.learners || r.DisablePreVote != tc.noPreVote || r.ForceNewCluster != tc.force {
			t.Errorf("%v: %+v", tc.args, r)
		}
	}
}

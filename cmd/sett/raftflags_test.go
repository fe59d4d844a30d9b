package main

import (
	"io"
	"testing"
	"time"
)

// --wal-dir, --max-learners, --pre-vote and --warning-apply-duration reach the member's raft options
// with etcd's defaults (no wal dir, 1 learner, pre-vote on, 100 ms).
func TestRaftFlags(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		wal       string
		learners  int
		noPreVote bool
		applyWarn time.Duration
		force     bool
		wantErr   bool
	}{
		{args: nil, learners: 1, applyWarn: 100 * time.Millisecond},
		{args: []string{"--wal-dir=/w", "--max-learners=3", "--pre-vote=false"}, wal: "/w", learners: 3, noPreVote: true, applyWarn: 100 * time.Millisecond},
		{args: []string{"--pre-vote"}, learners: 1, applyWarn: 100 * time.Millisecond},
		{args: []string{"--force-new-cluster"}, learners: 1, force: true, applyWarn: 100 * time.Millisecond},
		{args: []string{"--force-new-cluster=false"}, learners: 1, applyWarn: 100 * time.Millisecond},
		{args: []string{"--pre-vote=maybe"}, wantErr: true},
		{args: []string{"--warning-apply-duration=2s"}, learners: 1, applyWarn: 2 * time.Second},
		{args: []string{"--experimental-warning-apply-duration=3s"}, learners: 1, applyWarn: 3 * time.Second},
		{args: []string{"--warning-apply-duration=soon"}, wantErr: true},
	} {
		o, err := parseOptions(tc.args, func(string) string { return "" }, io.Discard)
		if tc.wantErr != (err != nil) {
			t.Fatalf("%v: err %v", tc.args, err)
		}
		if err != nil {
			continue
		}
		r := o.cfg.Raft
		if r.WALDir != tc.wal || r.MaxLearners != tc.learners || r.DisablePreVote != tc.noPreVote || r.WarningApplyDuration != tc.applyWarn || r.ForceNewCluster != tc.force {
			t.Errorf("%v: %+v", tc.args, r)
		}
	}
}

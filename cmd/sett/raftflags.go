package main

import (
	"errors"
	"flag"

	"github.com/sett-dev/sett/replication"
)

// invertedBool is a boolean flag stored negated (--pre-vote into
// DisablePreVote, whose zero value is etcd's default).
type invertedBool struct{ v *bool }

func (b invertedBool) String() string {
	if b.v == nil {
		return "true"
	}
	return map[bool]string{true: "false", false: "true"}[*b.v]
}
func (b invertedBool) IsBoolFlag() bool { return true }
func (b invertedBool) Set(s string) error {
	var on bool
	switch s {
	case "1", "t", "T", "true", "TRUE", "True":
		on = true
	case "0", "f", "F", "false", "FALSE", "False":
		on = false
	default:
		return errParseBool
	}
	*b.v = !on
	return nil
}

var errParseBool = errors.New("parse error")

// addRaftFlags adds etcd's --wal-dir, --max-learners, --pre-vote and
// --warning-apply-duration and --force-new-cluster.
func addRaftFlags(fs *flag.FlagSet, o *replication.Options) {
	fs.StringVar(&o.WALDir, "wal-dir", "", "Path to the dedicated wal directory (sett's raft log; default ${data-dir}/raft).")
	o.MaxLearners = 1
	fs.IntVar(&o.MaxLearners, "max-learners", 1, "Sets the maximum number of learners that can be available in the cluster membership.")
	o.WarningApplyDuration = replication.DefaultWarningApplyDuration
	fs.DurationVar(&o.WarningApplyDuration, "warning-apply-duration", o.WarningApplyDuration, "Time duration after which a warning is generated if applying a request takes more time.")
	fs.DurationVar(&o.WarningApplyDuration, "experimental-warning-apply-duration", o.WarningApplyDuration, "Deprecated: use --warning-apply-duration.")
	fs.BoolVar(&o.ForceNewCluster, "force-new-cluster", false, "Restart this member on its data as a one-member cluster: the other members are removed, uncommitted entries dropped.")
	fs.Var(invertedBool{&o.DisablePreVote}, "pre-vote", "Enable the raft Pre-Vote algorithm to prevent disruption when a node that has been partitioned away rejoins the cluster.")
}

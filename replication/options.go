package replication

import (
	"path/filepath"
	"time"
)

// Options are etcd's raft and membership flags a member may set; the zero
// value is etcd's default behaviour.
type Options struct {
	// WALDir is --wal-dir: the raft log's directory. Default DataDir/raft.
	// Received snapshots stay in DataDir/raft.
	WALDir string
	// MaxLearners is --max-learners: a learner added when this many exist
	// is refused with ErrTooManyLearners (checked when applied). 0 means
	// etcd's default, 1.
	MaxLearners int
	// DisablePreVote is --pre-vote=false.
	DisablePreVote bool
	// WarningApplyDuration is --warning-apply-duration: applying a batch
	// of entries that takes longer logs etcd's "apply request took too
	// long" warning. 0 means etcd's default, 100 ms.
	WarningApplyDuration time.Duration
	// ForceNewCluster is --force-new-cluster: a member restarting on its
	// data makes itself a one-member cluster (see forceNewCluster).
	ForceNewCluster bool
}

// DefaultWarningApplyDuration is etcd's --warning-apply-duration default.
const DefaultWarningApplyDuration = 100 * time.Millisecond

func (o Options) warningApplyDuration() time.Duration {
	if o.WarningApplyDuration <= 0 {
		return DefaultWarningApplyDuration
	}
	return o.WarningApplyDuration
}

func (o Options) maxLearners() int {
	if o.MaxLearners <= 0 {
		return 1
	}
	return o.MaxLearners
}

// walDir is where the raft log lives.
func (n *Node) walDir() string {
	if n.cfg.Options.WALDir != "" {
		return n.cfg.Options.WALDir
	}
	return filepath.Join(n.cfg.DataDir, "raft")
}

package metrics

import "fmt"

// RaftState is what the metrics read of the member's raft node.
type RaftState interface {
	Leader() uint64
	IsLeader() bool
	IsLearner() bool
	CommittedIndex() uint64
	AppliedIndex() uint64
	// LeaderChanges counts the changes to a new leader this member saw.
	LeaderChanges() int64
}

// loneLeader is a member that has always led alone.
type loneLeader struct{ applied func() uint64 }

func (l loneLeader) Leader() uint64       { return 1 }
func (l loneLeader) IsLeader() bool       { return true }
func (l loneLeader) IsLearner() bool      { return false }
func (l loneLeader) LeaderChanges() int64 { return 1 }
func (l loneLeader) CommittedIndex() uint64 {
	return l.AppliedIndex()
}
func (l loneLeader) AppliedIndex() uint64 {
	if l.applied == nil {
		return 0
	}
	return l.applied()
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// SnapshotReceived counts a snapshot received from member from.
func (m *Metrics) SnapshotReceived(from uint64) {
	m.snapshotReceived.WithLabelValues(fmt.Sprintf("%x", from)).Inc()
}

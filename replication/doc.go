// Package replication orders writes through a Raft log (go.etcd.io/raft/v3)
// and applies them to storage in log order, on every member alike. A single
// member is a one-voter cluster on the same code path.
//
// A write travels: Propose (any member; raft forwards proposals to the
// leader) → the leader appends it and replicates it → once a quorum holds it
// durably it is committed → every member applies committed entries in index
// order to its storage.Store (Node.applyCommitted) → the apply observer (the
// watch hub) sees the new revisions → the proposer, waiting on the member it
// proposed to, gets the result.
//
// Invariants:
//   - An entry is durable in the raft log (raftlog, fdatasync) before it is
//     applied; storage itself does not fsync each batch (storage.Options.
//     LogDurable), and the raft log keeps every entry above storage's
//     durable applied index (storage is synced before a raft snapshot lets
//     the log drop entries).
//   - Apply is deterministic and skips entries at or below storage's applied
//     index, so replaying the log after a crash, or entries covered by an
//     installed snapshot, changes nothing.
//   - Membership is storage state changed only by applied entries; raft's
//     configuration follows it through ApplyConfChange for every
//     configuration entry, applied to storage or not.
package replication

// Package autocompact compacts a member's key-value history on its own, as
// etcd's --auto-compaction-mode and --auto-compaction-retention do.
//
// Two policies, both etcd 3.6's:
//
//   - periodic: keep about one retention window of history. The runner
//     samples the current revision every tenth of the window (of an hour
//     at most) and compacts to the revision sampled one window ago: first
//     once a whole window has passed, then every window (every hour at
//     most).
//   - revision: keep the last N revisions. Every five minutes the runner
//     compacts to the current revision minus N.
//
// A compaction goes through the same path as a client's Compact request
// (proposed through raft, so every member compacts); only the leader's
// runner proposes: the server pauses it when the member stops leading and
// resumes it when the member leads again.
package autocompact

// Package storage is sett's MVCC state machine on Badger v4: the key space
// etcd's KV API sees, at every uncompacted revision, plus leases.
//
// # Layout
//
// Badger runs in its normal (non-managed) mode; sett keeps its own revisions
// in its keys. Every Badger key starts with a one-byte tree tag:
//
//	'c' + key                  current tree: the newest record of each key.
//	                           A deleted key keeps a tombstone record here
//	                           until compaction passes its deletion revision,
//	                           so a scan of this tree finds every key that
//	                           existed at any readable revision.
//	'r' + rev(8) + sub(8)      revision tree: every change, in revision order,
//	                           as an event (PUT record or DELETE tombstone).
//	                           Watch replay reads it sequentially.
//	'h' + len(key) + key + ^rev(8)
//	                           history index: for each key, its revisions,
//	                           newest first; the value is the sub-revision,
//	                           pointing into the revision tree.
//	'l' + leaseID(8)           lease records (TTL).
//	'a' + leaseID(8) + key     keys attached to a lease.
//	'm' + name                 meta: current revision, compaction point,
//	                           applied index, raft term.
//
// # Invariants
//
//   - One Badger transaction holds a whole group-committed batch of
//     revisions, together with the new current revision and applied index;
//     Badger replays it all or nothing after a crash, so a restart serves
//     exactly a prefix of the applied commands, never part of one.
//   - A reader opens a Badger snapshot and reads the revision from the same
//     snapshot, so the data and the header revision always agree.
//   - Reading key range K at revision R scans the current tree over K; a
//     record with mod_revision <= R is the answer for its key (a tombstone
//     means absent); only keys changed after R cost one history seek. A list
//     pinned at a recent revision therefore costs about as much as a list at
//     the current one, however long the history is.
//   - Compaction at C keeps, for every key, the newest change at or below C
//     unless it is a deletion, drops every older change and every tombstone
//     deleted at or below C, and never touches anything above C.
package storage

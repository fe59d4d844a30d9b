// Package lease is sett's lessor: it knows when every lease in storage
// expires, renews leases on keep-alive, revokes expired leases and
// checkpoints remaining TTLs, with etcd 3.6's semantics.
//
// # Where lease state lives
//
// Storage holds what is replicated: each lease's ID and granted TTL, its
// attached keys, and its last checkpointed remaining TTL. The lessor holds
// what is not: each lease's expiry time, in memory, on the member that runs
// expiry (etcd's "primary lessor", its raft leader; a single sett member is
// always it). Keep-alives refresh the in-memory expiry only; they write
// nothing, as in etcd.
//
// Every change to storage's leases goes through the ordered write path:
// clients' grants and revokes, the lessor's own revokes of expired leases
// (proposed as LeaseRevoke, so that the attached keys are deleted in one
// revision, with DELETE events, exactly as a client's revoke) and its
// checkpoints (proposed as LeaseCheckpoint). The lessor learns of grants
// and revokes from storage (Store.ObserveLeases) when they are applied,
// whoever proposed them, before the proposer is answered: a lease is
// known to the lessor by the time its grant is acknowledged.
//
// # Expiry
//
// The lessor wakes at least every 500 ms, as etcd's does, and also at the
// earliest expiry: a lease's keys are deleted shortly after its TTL (a few
// milliseconds plus the write) rather than up to half a second late. At
// most 500 leases are revoked per wake-up (etcd's revoke rate of 1000/s); a
// revoke that does not go through is retried 7 s later (etcd's request
// timeout). A keep-alive of a lease that has expired but is not revoked yet
// waits for the revoke and then answers TTL 0, as etcd's does.
//
// # Checkpoints and restarts
//
// sett always checkpoints, as etcd does with
// --experimental-enable-lease-checkpoint (and, as in 3.6, persists the
// checkpoints): every CheckpointInterval (etcd's 5 minutes; for tests the
// SETT_LEASE_CHECKPOINT_INTERVAL environment variable sets it) each lease
// whose remaining TTL is longer than the interval has that remaining TTL
// (rounded up to a second) written to storage. A keep-alive of a lease with
// a checkpoint clears the checkpoint (one write) before renewing it.
//
// Remaining TTLs across a restart (a crash and a clean stop alike): when
// the member starts (etcd: when it becomes leader), every lease gets, from
// that moment, its last checkpointed remaining TTL if it has one, else its
// full granted TTL, plus one second (etcd's election timeout). Time spent
// down does not count against a lease. So a lease never expires earlier
// than it would have without the restart, a lease with a TTL of at most
// the checkpoint interval (every TTL below 5 minutes by default) restarts
// with its full TTL, and a longer one restarts with at most one checkpoint
// interval more than it had left. With 1000 leases or more, expiries that
// would fall into the same second beyond 750 are spread out, as etcd does,
// so that they are not all revoked at once.
//
// Differences from etcd: a checkpoint due while a lease is still at its
// full TTL (just renewed) is rescheduled rather than dropped, so a long
// lease keeps being checkpointed until it expires; at most one checkpoint
// is scheduled per lease at a time; and checkpoints and renewals of the
// same lease are ordered, so a checkpoint never records a remaining TTL
// older than a renewal that was acknowledged before it.
package lease

package storage

import (
	"github.com/dgraph-io/badger/v4"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// leaseCheckpoint records leases' remaining TTLs (etcd's lease
// checkpointing), so that a restart does not grant every lease its full TTL.
// A remaining TTL of 0 clears the checkpoint (a renewed lease gets its full
// TTL again); unknown leases are skipped, as etcd's lessor skips them. A
// checkpoint changes no key: the revision does not move.
func (b *batch) leaseCheckpoint(c *pb.LeaseCheckpointRequest) (Result, error) {
	for _, cp := range c.Checkpoints {
		if cp == nil || !b.leases.exists(cp.ID) {
			continue
		}
		key := leaseRemainingKey(cp.ID)
		var err error
		if cp.Remaining_TTL > 0 {
			val := encodeInt(cp.Remaining_TTL)
			err = b.txnDo(func(t *badger.Txn) error { return t.Set(key, val) })
		} else {
			err = b.txnDo(func(t *badger.Txn) error { return t.Delete(key) })
		}
		if err != nil {
			return Result{}, err
		}
	}
	return Result{Resp: &pb.LeaseCheckpointResponse{Header: &pb.ResponseHeader{Revision: b.rev}}}, nil
}

// dropLeaseCheckpoint deletes a revoked lease's remaining-TTL record, in the
// revoke's last transaction.
func (b *batch) dropLeaseCheckpoint(id int64) error {
	key := leaseRemainingKey(id)
	return b.txnDo(func(t *badger.Txn) error { return t.Delete(key) })
}

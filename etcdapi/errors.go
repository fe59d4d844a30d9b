package etcdapi

import (
	"context"
	"errors"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sett-dev/sett/replication"
	"github.com/sett-dev/sett/storage"
)

var errRequestTooLarge = rpctypes.ErrGRPCRequestTooLarge

// toGRPC maps internal errors to the gRPC errors etcd returns for them;
// anything unknown becomes codes.Unknown with its message, as in etcd.
func toGRPC(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err).Err()
	}
	switch {
	case errors.Is(err, storage.ErrCompacted):
		return rpctypes.ErrGRPCCompacted
	case errors.Is(err, storage.ErrFutureRev):
		return rpctypes.ErrGRPCFutureRev
	case errors.Is(err, storage.ErrKeyNotFound):
		return rpctypes.ErrGRPCKeyNotFound
	case errors.Is(err, storage.ErrLeaseNotFound):
		return rpctypes.ErrGRPCLeaseNotFound
	case errors.Is(err, storage.ErrLeaseExists):
		return rpctypes.ErrGRPCLeaseExist
	case errors.Is(err, storage.ErrNoSpace):
		return rpctypes.ErrGRPCNoSpace
	case errors.Is(err, storage.ErrCorrupt):
		return rpctypes.ErrGRPCCorrupt
	case errors.Is(err, storage.ErrTooLarge):
		return rpctypes.ErrGRPCRequestTooLarge
	}
	for _, m := range replicationErrors {
		if errors.Is(err, m.err) {
			return m.grpc
		}
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(codes.Unknown, err.Error())
}

// replicationErrors are the write path's and membership's errors, as etcd
// sends them.
var replicationErrors = []struct{ err, grpc error }{
	{replication.ErrStopped, rpctypes.ErrGRPCStopped},
	{replication.ErrNoLeader, rpctypes.ErrGRPCNoLeader},
	{replication.ErrNotLeader, rpctypes.ErrGRPCNotLeader},
	{replication.ErrLeaderChanged, rpctypes.ErrGRPCLeaderChanged},
	{replication.ErrTimeout, rpctypes.ErrGRPCTimeout},
	{replication.ErrTimeoutLeaderFail, rpctypes.ErrGRPCTimeoutDueToLeaderFail},
	{replication.ErrUnhealthy, rpctypes.ErrGRPCUnhealthy},
	{replication.ErrMemberNotFound, rpctypes.ErrGRPCMemberNotFound},
	{replication.ErrMemberRemoved, rpctypes.ErrGRPCMemberNotFound},
	{replication.ErrMemberExists, rpctypes.ErrGRPCMemberExist},
	{replication.ErrPeerURLExists, rpctypes.ErrGRPCPeerURLExist},
	// etcd does not map this one: it reaches clients as codes.Unknown.
	{replication.ErrNotEnoughStarted, status.Error(codes.Unknown, replication.ErrNotEnoughStarted.Error())},
	{replication.ErrMemberNotLearner, rpctypes.ErrGRPCMemberNotLearner},
	{replication.ErrLearnerNotReady, rpctypes.ErrGRPCLearnerNotReady},
	{replication.ErrTooManyLearners, rpctypes.ErrGRPCTooManyLearners},
	{replication.ErrBadLeaderTransferee, rpctypes.ErrGRPCBadLeaderTransferee},
}

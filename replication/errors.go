package replication

import (
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Errors with etcd's texts: etcdapi maps them to etcd's gRPC errors.
var (
	ErrStopped              = errors.New("etcdserver: server stopped")
	ErrTimeout              = errors.New("etcdserver: request timed out")
	ErrTimeoutLeaderFail    = errors.New("etcdserver: request timed out, possibly due to previous leader failure")
	ErrNoLeader             = errors.New("etcdserver: no leader")
	ErrLeaderChanged        = errors.New("etcdserver: leader changed")
	ErrNotLeader            = errors.New("etcdserver: not leader")
	ErrMemberNotFound       = errors.New("etcdserver: member not found")
	ErrMemberExists         = errors.New("etcdserver: member ID already exist")
	ErrPeerURLExists        = errors.New("etcdserver: Peer URLs already exists")
	ErrMemberRemoved        = errors.New("etcdserver: member ID has been removed")
	ErrNotEnoughStarted     = errors.New("etcdserver: re-configuration failed due to not enough started members")
	ErrUnhealthy            = errors.New("etcdserver: unhealthy cluster")
	ErrLearnerNotReady      = errors.New("etcdserver: can only promote a learner member which is in sync with leader")
	ErrMemberNotLearner     = errors.New("etcdserver: can only promote a learner member")
	ErrTooManyLearners      = errors.New("etcdserver: too many learner members in cluster")
	ErrBadLeaderTransferee  = errors.New("etcdserver: bad leader transferee")
	ErrLeaderTransferFailed = errors.New("etcdserver: request timed out, leader transfer took too long")
)

var knownErrors = []error{
	ErrStopped, ErrTimeout, ErrTimeoutLeaderFail, ErrNoLeader, ErrLeaderChanged, ErrNotLeader,
	ErrMemberNotFound, ErrMemberExists, ErrPeerURLExists, ErrMemberRemoved, ErrNotEnoughStarted,
	ErrUnhealthy, ErrLearnerNotReady, ErrMemberNotLearner, ErrTooManyLearners,
	ErrBadLeaderTransferee, ErrLeaderTransferFailed,
}

// FromPeerError turns an error a peer call returned (a gRPC status with
// the remote error's text) back into the error it was.
func FromPeerError(err error) error {
	if s, ok := status.FromError(err); ok {
		for _, e := range knownErrors {
			if s.Message() == e.Error() {
				return e
			}
		}
		if s.Code() == codes.Unavailable {
			return ErrNoLeader
		}
	}
	return err
}

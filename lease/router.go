package lease

import (
	"context"
	"encoding/binary"
	"errors"
	"time"

	"google.golang.org/grpc/status"
)

// Leader is the member's way to the leader's lessor (replication.Node).
type Leader interface {
	IsLeader() bool
	CallLeader(ctx context.Context, method string, req []byte) ([]byte, error)
	Handle(method string, fn func(ctx context.Context, req []byte) ([]byte, error))
}

// Router serves keep-alives and TimeToLive on every member: only the
// leader's lessor knows when leases expire, so other members ask it over
// the peer transport, as etcd's followers forward these requests.
type Router struct {
	*Lessor
	node Leader
}

// Peer calls the router answers on the leader.
const (
	callRenew      = "lease-renew"
	callTimeToLive = "lease-ttl"
)

// retryFor bounds how long a request waits for a leader (or for a new
// leader's lessor to take over) before it fails.
const retryFor = 5 * time.Second

// NewRouter routes le's requests through node.
func NewRouter(le *Lessor, node Leader) *Router {
	r := &Router{Lessor: le, node: node}
	node.Handle(callRenew, func(ctx context.Context, req []byte) ([]byte, error) {
		ttl, err := le.Renew(ctx, int64(binary.BigEndian.Uint64(req)))
		if err != nil {
			return nil, err
		}
		return binary.BigEndian.AppendUint64(nil, uint64(ttl)), nil
	})
	node.Handle(callTimeToLive, func(ctx context.Context, req []byte) ([]byte, error) {
		remaining, granted, ok := le.Lookup(int64(binary.BigEndian.Uint64(req)))
		if !ok {
			return nil, ErrLeaseNotFound
		}
		b := binary.BigEndian.AppendUint64(nil, uint64(remaining))
		return binary.BigEndian.AppendUint64(b, uint64(granted)), nil
	})
	return r
}

// Renew renews lease id on the leader.
func (r *Router) Renew(ctx context.Context, id int64) (int64, error) {
	var ttl int64
	err := r.onLeader(ctx, func() error {
		var err error
		ttl, err = r.Lessor.Renew(ctx, id)
		return err
	}, func() error {
		b, err := r.node.CallLeader(ctx, callRenew, binary.BigEndian.AppendUint64(nil, uint64(id)))
		if err == nil && len(b) == 8 {
			ttl = int64(binary.BigEndian.Uint64(b))
		}
		return err
	})
	return ttl, err
}

// TimeToLive reports lease id's remaining and granted TTL, as the leader
// knows them.
func (r *Router) TimeToLive(ctx context.Context, id int64) (remaining, granted int64, ok bool, err error) {
	err = r.onLeader(ctx, func() error {
		remaining, granted, ok = r.Lessor.Lookup(id)
		return nil
	}, func() error {
		b, err := r.node.CallLeader(ctx, callTimeToLive, binary.BigEndian.AppendUint64(nil, uint64(id)))
		if errors.Is(err, ErrLeaseNotFound) {
			ok = false
			return nil
		}
		if err == nil && len(b) == 16 {
			remaining, granted, ok = int64(binary.BigEndian.Uint64(b)), int64(binary.BigEndian.Uint64(b[8:])), true
		}
		return err
	})
	return remaining, granted, ok, err
}

// onLeader runs local on the leader and remote elsewhere, retrying while
// leadership moves (no leader, or a leader whose lessor is not primary yet).
func (r *Router) onLeader(ctx context.Context, local, remote func() error) error {
	deadline := time.Now().Add(retryFor)
	for {
		var err error
		if r.node.IsLeader() {
			err = local()
		} else {
			err = peerError(remote())
		}
		if !errors.Is(err, ErrNotPrimary) && !isNoLeader(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		case <-r.stopc:
			return ErrStopped
		}
	}
}

// peerError recovers the lessor's errors from a peer call's status.
func peerError(err error) error {
	if s, ok := status.FromError(err); ok && err != nil {
		for _, e := range []error{ErrLeaseNotFound, ErrNotPrimary, ErrStopped} {
			if s.Message() == e.Error() {
				return e
			}
		}
	}
	return err
}

func isNoLeader(err error) bool {
	return err != nil && err.Error() == "etcdserver: no leader"
}

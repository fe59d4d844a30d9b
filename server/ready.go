package server

import (
	"context"

	"google.golang.org/grpc"
)

// waitReadyUnary holds a request until the member is ready, as etcd serves
// nothing before its ReadyNotify.
func (f *frontend) waitReadyUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := f.waitReady(ctx); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (f *frontend) waitReadyStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := f.waitReady(ss.Context()); err != nil {
		return err
	}
	return handler(srv, ss)
}

func (f *frontend) waitReady(ctx context.Context) error {
	if f.ready == nil {
		return nil
	}
	select {
	case <-f.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

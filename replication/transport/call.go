package transport

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Call is a unary request to a peer for features beyond raft (lease
// keep-alive forwarding to the leader, etc.). It uses the connection of
// the peer's message stream. Errors are gRPC status errors: the handler's
// own status passes through unchanged; codes.Unimplemented means the peer
// has no handler for method; codes.Unavailable that to is not a peer.
func (t *Transport) Call(ctx context.Context, to uint64, method string, req []byte) ([]byte, error) {
	p := t.peer(to)
	if p == nil {
		return nil, status.Errorf(codes.Unavailable, "member %s is not a peer", idString(to))
	}
	conn, _, err := p.clientConn()
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	h := header{kind: kindCall, from: t.cfg.ID, to: to, cluster: t.cfg.ClusterID}
	var reply frame
	if err := conn.Invoke(ctx, methodCall, &frame{b: encodeCall(h, method, req)}, &reply); err != nil {
		return nil, err
	}
	rh, body, err := parseHeader(reply.b)
	if err != nil || rh.kind != kindReply || rh.cluster != t.cfg.ClusterID || rh.from != to {
		return nil, status.Error(codes.Internal, fmt.Sprintf("malformed reply from member %s", idString(to)))
	}
	return body, nil
}

// Handle registers the server side of Call for method (before serving).
// fn's ctx ends with the call or when the transport stops. An error that
// is a gRPC status reaches the caller unchanged; any other error reaches
// it as codes.Unknown with its message.
func (t *Transport) Handle(method string, fn func(ctx context.Context, req []byte) ([]byte, error)) {
	t.handlersMu.Lock()
	defer t.handlersMu.Unlock()
	t.handlers[method] = fn
}

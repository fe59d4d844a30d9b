package transport

import (
	"context"
	"errors"
	"io"
	"math"
	"strconv"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

const serviceName = "sett.peer.v1.Peer"

const (
	methodMessages = "/" + serviceName + "/Messages"
	methodSnapshot = "/" + serviceName + "/Snapshot"
	methodCall     = "/" + serviceName + "/Call"
)

// Stream metadata: the same facts every frame header carries, checked
// once when a stream opens so that a misdirected stream never counts as
// healthy. Values are hexadecimal.
const (
	mdFrom    = "sett-from"
	mdTo      = "sett-to"
	mdCluster = "sett-cluster"
)

// peerService is the handler type of the service description.
type peerService interface {
	messages(grpc.ServerStream) error
	snapshot(grpc.ServerStream) error
	call(context.Context, *frame) (*frame, error)
}

var serviceDesc = grpc.ServiceDesc{
	ServiceName: serviceName,
	HandlerType: (*peerService)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Call",
		Handler: func(srv any, ctx context.Context, dec func(any) error, intercept grpc.UnaryServerInterceptor) (any, error) {
			req := new(frame)
			if err := dec(req); err != nil {
				return nil, err
			}
			s := srv.(peerService)
			if intercept == nil {
				return s.call(ctx, req)
			}
			info := &grpc.UnaryServerInfo{Server: srv, FullMethod: methodCall}
			return intercept(ctx, req, info, func(ctx context.Context, req any) (any, error) {
				return s.call(ctx, req.(*frame))
			})
		},
	}},
	Streams: []grpc.StreamDesc{
		{
			StreamName:    "Messages",
			Handler:       func(srv any, ss grpc.ServerStream) error { return srv.(peerService).messages(ss) },
			ClientStreams: true,
			ServerStreams: true, // the server sends nothing; the client watches for the stream's end
		},
		{
			StreamName:    "Snapshot",
			Handler:       func(srv any, ss grpc.ServerStream) error { return srv.(peerService).snapshot(ss) },
			ClientStreams: true,
		},
	},
}

// ServerOptions returns the options the peer gRPC server must be created
// with: the raw-frame codec (other services on the server keep protobuf),
// no message size limit, and keepalive pings as often as peers send them.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ForceServerCodecV2(codec{}),
		grpc.MaxRecvMsgSize(math.MaxInt32),
		grpc.MaxSendMsgSize(math.MaxInt32),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             time.Second,
			PermitWithoutStream: true,
		}),
	}
}

// Register adds the peer service to s, which must have been created with
// ServerOptions.
func (t *Transport) Register(s *grpc.Server) {
	s.RegisterService(&serviceDesc, (*server)(t))
}

// server is the receiving side of a Transport.
type server Transport

var errStopped = status.Error(codes.Unavailable, "peer transport stopped")

// checkHeader refuses frames from another cluster or for another member.
func (s *server) checkHeader(h header, kind byte) error {
	if h.cluster != s.cfg.ClusterID {
		s.log.Warn("rejected peer traffic from another cluster",
			"remote-peer-id", idString(h.from), "remote-cluster-id", idString(h.cluster),
			"local-cluster-id", idString(s.cfg.ClusterID))
		return status.Errorf(codes.FailedPrecondition, "cluster ID mismatch: member %s of cluster %s sent to cluster %s",
			idString(h.from), idString(h.cluster), idString(s.cfg.ClusterID))
	}
	if h.to != s.cfg.ID {
		s.log.Warn("rejected peer traffic for another member",
			"remote-peer-id", idString(h.from), "addressed-to", idString(h.to))
		return status.Errorf(codes.FailedPrecondition, "member ID mismatch: member %s sent to %s, but this is %s",
			idString(h.from), idString(h.to), idString(s.cfg.ID))
	}
	if h.kind != kind {
		return status.Errorf(codes.InvalidArgument, "unexpected frame kind %d (want %d)", h.kind, kind)
	}
	return nil
}

// openStream checks a new stream's metadata and returns its sender.
func (s *server) openStream(ctx context.Context, kind byte) (uint64, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	get := func(key string) uint64 {
		if v := md.Get(key); len(v) == 1 {
			n, err := strconv.ParseUint(v[0], 16, 64)
			if err == nil {
				return n
			}
		}
		return 0
	}
	h := header{kind: kind, from: get(mdFrom), to: get(mdTo), cluster: get(mdCluster)}
	if h.from == 0 {
		return 0, status.Error(codes.InvalidArgument, "peer stream without sender ID")
	}
	return h.from, s.checkHeader(h, kind)
}

// serve runs recv on its own goroutine and returns when it does, or with
// errStopped when the transport stops: a handler blocked in RecvMsg could
// not notice Stop otherwise. Returning ends the stream, which unblocks recv.
func (s *server) serve(ss grpc.ServerStream, recv func(ctx context.Context) error) error {
	ctx, cancel := context.WithCancel(ss.Context())
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()
	errc := make(chan error, 1)
	if !(*Transport)(s).goTracked(func() { errc <- recv(ctx) }) {
		return errStopped
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		if s.ctx.Err() != nil {
			return errStopped
		}
		return status.FromContextError(ctx.Err()).Err()
	}
}

// messages receives a peer's message stream and steps every message, in
// order, into raft.
func (s *server) messages(ss grpc.ServerStream) error {
	from, err := s.openStream(ss.Context(), kindMessages)
	if err != nil {
		return err
	}
	if err := ss.SendHeader(metadata.Pairs(mdFrom, idString(s.cfg.ID), mdCluster, idString(s.cfg.ClusterID))); err != nil {
		return err
	}
	return s.serve(ss, func(ctx context.Context) error {
		for {
			var f frame
			if err := ss.RecvMsg(&f); err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				return err
			}
			h, body, err := parseHeader(f.b)
			if err != nil {
				return status.Error(codes.InvalidArgument, err.Error())
			}
			if err := s.checkHeader(h, kindMessages); err != nil {
				return err
			}
			if h.from != from {
				return status.Errorf(codes.InvalidArgument, "frame from %s on the stream of %s", idString(h.from), idString(from))
			}
			for len(body) > 0 {
				var m raftpb.Message
				if body, err = nextMessage(body, &m); err != nil {
					return status.Error(codes.InvalidArgument, err.Error())
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if err := s.cfg.Raft.Process(ctx, m); err != nil {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					s.log.Warn("raft refused a peer message", "remote-peer-id", idString(from),
						"type", m.Type.String(), "error", err)
				}
			}
		}
	})
}

// call answers a Call with the handler registered for its method.
func (s *server) call(ctx context.Context, req *frame) (*frame, error) {
	h, body, err := parseHeader(req.b)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	method, payload, err := decodeCall(body)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	// A public call (see HandlePublic) comes from a member that does not
	// know the cluster yet: it addresses nobody in particular.
	if !(isPublic(method) && h.kind == kindCall && h.to == 0 && h.cluster == 0) {
		if err := s.checkHeader(h, kindCall); err != nil {
			return nil, err
		}
	}
	s.handlersMu.RLock()
	fn := s.handlers[method]
	s.handlersMu.RUnlock()
	if fn == nil {
		return nil, status.Errorf(codes.Unimplemented, "peer method %q is not handled by member %s", method, idString(s.cfg.ID))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()
	reply, err := fn(ctx, payload)
	if err != nil {
		if _, ok := status.FromError(err); ok {
			return nil, err
		}
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return nil, status.FromContextError(err).Err()
		}
		return nil, status.Error(codes.Unknown, err.Error())
	}
	rh := header{kind: kindReply, from: s.cfg.ID, to: h.from, cluster: s.cfg.ClusterID}
	return &frame{b: append(rh.appendTo(make([]byte, 0, maxHeaderLen+len(reply))), reply...)}, nil
}

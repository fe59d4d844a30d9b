package server

import (
	"context"
	"log/slog"
	"math"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"
)

// DefaultWarningUnaryRequestDuration is etcd's
// --warning-unary-request-duration default.
const DefaultWarningUnaryRequestDuration = 300 * time.Millisecond

// requestStats logs etcd's "request stats" line for a unary call: at warn
// level when it took longer than warn, at debug level for every call when
// debug is enabled. Counts and sizes follow etcd: a put counts 1 request,
// a txn the ops of the branch taken, a range its response count, a delete
// the deleted keys; other calls -1. Put values are redacted.
func requestStats(log *slog.Logger, warn time.Duration) grpc.UnaryServerInterceptor {
	if warn <= 0 {
		warn = DefaultWarningUnaryRequestDuration
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		took := time.Since(start)
		level := slog.LevelDebug
		if took > warn {
			level = slog.LevelWarn
		}
		if !log.Enabled(ctx, level) {
			return resp, err
		}
		remote := "No remote client info."
		if p, ok := peer.FromContext(ctx); ok {
			remote = p.Addr.String()
		}
		st := statsOf(req, resp)
		log.Log(ctx, level, "request stats",
			"start time", start, "time spent", took, "remote", remote, "response type", info.FullMethod,
			"request count", st.reqCount, "request size", st.reqSize,
			"response count", st.respCount, "response size", st.respSize,
			"request content", st.content)
		return resp, err
	}
}

type callStats struct {
	reqCount, respCount int64
	reqSize, respSize   int
	content             string
}

func statsOf(req, resp any) callStats {
	switch r := resp.(type) {
	case *pb.RangeResponse:
		st := callStats{}
		if q, ok := req.(*pb.RangeRequest); ok {
			st.reqSize, st.content = q.Size(), q.String()
		}
		if r != nil {
			st.respCount, st.respSize = r.GetCount(), r.Size()
		}
		return st
	case *pb.PutResponse:
		st := callStats{}
		if q, ok := req.(*pb.PutRequest); ok {
			st.reqCount, st.reqSize, st.content = 1, q.Size(), pb.NewLoggablePutRequest(q).String()
		}
		if r != nil {
			st.respSize = r.Size()
		}
		return st
	case *pb.DeleteRangeResponse:
		st := callStats{}
		if q, ok := req.(*pb.DeleteRangeRequest); ok {
			st.reqSize, st.content = q.Size(), q.String()
		}
		if r != nil {
			st.respCount, st.respSize = r.GetDeleted(), r.Size()
		}
		return st
	case *pb.TxnResponse:
		st := callStats{}
		if q, ok := req.(*pb.TxnRequest); ok && r != nil {
			ops := q.GetFailure()
			if r.GetSucceeded() {
				ops = q.GetSuccess()
			}
			st.reqCount = int64(len(ops))
			for _, op := range ops {
				st.reqSize += op.Size()
			}
			st.content = pb.NewLoggableTxnRequest(q).String()
		}
		if r != nil {
			st.respSize = r.Size()
		}
		return st
	}
	return callStats{reqCount: -1, reqSize: -1, respCount: -1, respSize: -1}
}

func (c Config) maxConcurrentStreams() uint32 {
	if c.MaxConcurrentStreams == 0 {
		return math.MaxUint32
	}
	return c.MaxConcurrentStreams
}

package etcdapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sett-dev/sett/watchhub"
)

// Watch is etcd's Watch service: each gRPC stream is a watchhub.Stream,
// fed by a receive loop (create, cancel, progress requests) and drained by
// a send loop, as etcd's v3rpc serverWatchStream.
//
// etcd's "require leader" metadata (rpctypes.MetadataRequireLeaderKey) is
// the server's interceptors' business: such streams are refused, or ended,
// without a leader.
type Watch struct {
	pb.UnimplementedWatchServer
	s   *Server
	hub *watchhub.Hub
	log *slog.Logger
}

// Watch returns the Watch service over hub.
func (s *Server) Watch(hub *watchhub.Hub, log *slog.Logger) *Watch {
	if log == nil {
		log = slog.Default()
	}
	return &Watch{s: s, hub: hub, log: log}
}

// maxResponseBytes is where etcd starts fragmenting a response of a
// watcher created with fragment: --max-request-bytes plus gRPC's overhead.
func (w *Watch) maxResponseBytes() int {
	return w.s.cfg.MaxRequestBytes + GRPCOverheadBytes
}

func (w *Watch) Watch(stream pb.Watch_WatchServer) error {
	ws := w.hub.NewStream()
	ctx := stream.Context()

	sendDone := make(chan struct{})
	go func() {
		defer close(sendDone)
		w.sendLoop(ctx, stream, ws)
	}()

	errc := make(chan error, 1)
	go func() {
		if err := w.recvLoop(stream, ws); err != nil {
			errc <- err
		}
	}()

	// As in etcd, a client closing its side (io.EOF) does not end the
	// stream: events keep flowing until the client cancels.
	var err error
	select {
	case err = <-errc:
		if errors.Is(err, context.Canceled) || status.Code(err) == codes.Canceled {
			err = rpctypes.ErrGRPCWatchCanceled
		}
	case <-ctx.Done():
		err = ctx.Err()
		if errors.Is(err, context.Canceled) {
			err = rpctypes.ErrGRPCWatchCanceled
		}
	case <-ws.Done():
		// The hub closed: the server is stopping.
		err = rpctypes.ErrGRPCStopped
	}
	ws.Close()
	<-sendDone
	return err
}

func (w *Watch) recvLoop(stream pb.Watch_WatchServer, ws *watchhub.Stream) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		switch uv := req.RequestUnion.(type) {
		case *pb.WatchRequest_CreateRequest:
			if uv.CreateRequest == nil {
				continue
			}
			if !ws.Watch(uv.CreateRequest) {
				return nil
			}
		case *pb.WatchRequest_CancelRequest:
			if uv.CancelRequest == nil {
				continue
			}
			if !ws.Cancel(uv.CancelRequest.WatchId) {
				return nil
			}
		case *pb.WatchRequest_ProgressRequest:
			if uv.ProgressRequest != nil {
				ws.RequestProgress()
			}
		default:
			// etcd ignores what it does not understand.
			w.log.Debug("invalid watch request type received", "type", fmt.Sprintf("%T", req.RequestUnion))
		}
	}
}

func (w *Watch) sendLoop(ctx context.Context, stream pb.Watch_WatchServer, ws *watchhub.Stream) {
	limit := w.maxResponseBytes()
	for {
		out, err := ws.Next(ctx)
		if err != nil {
			return
		}
		r := out.Resp
		r.Header = w.header(r.Header)
		if out.Fragment {
			err = sendFragments(r, limit, stream.Send)
		} else {
			err = stream.Send(r)
		}
		if err != nil {
			if ctx.Err() == nil {
				w.log.Warn("failed to send watch response", "err", err)
			}
			return
		}
	}
}

// header completes a watch response header. Unlike fill, it keeps the
// revision as given, zero included (etcd's compacted responses have it).
func (w *Watch) header(h *pb.ResponseHeader) *pb.ResponseHeader {
	if h == nil {
		h = &pb.ResponseHeader{}
	}
	h.ClusterId = w.s.cfg.ClusterID
	h.MemberId = w.s.cfg.MemberID
	h.RaftTerm = w.s.node.Term()
	return h
}

// sendFragments splits a response that reaches limit bytes into pieces as
// etcd does: each piece takes events while it stays under limit (but at
// least one), every piece but the last has Fragment set, and a response
// with fewer than two events is never split.
func sendFragments(wr *pb.WatchResponse, limit int, send func(*pb.WatchResponse) error) error {
	if wr.Size() < limit || len(wr.Events) < 2 {
		return send(wr)
	}
	// A response's size is its other fields plus, per event, the field's
	// tag, length and body: sizes add up, so pieces are measured as they
	// grow instead of re-encoded.
	base := *wr
	base.Fragment = true
	base.Events = nil
	baseSize := base.Size()
	rest := wr.Events
	for len(rest) > 0 {
		piece := base
		size := baseSize
		n := 0
		for _, ev := range rest {
			size += eventFieldSize(ev)
			if n > 0 && size >= limit {
				break
			}
			n++
		}
		piece.Events = rest[:n:n]
		rest = rest[n:]
		if len(rest) == 0 {
			piece.Fragment = false
		}
		if err := send(&piece); err != nil {
			return err
		}
	}
	return nil
}

// eventFieldSize is what one event adds to an encoded WatchResponse: the
// one-byte tag of field 11, the varint length, the event.
func eventFieldSize(ev *mvccpb.Event) int {
	n := ev.Size()
	return 1 + varintLen(uint64(n)) + n
}

func varintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

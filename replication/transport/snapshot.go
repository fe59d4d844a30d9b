package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// snapshotChunk is how much snapshot data one frame carries.
const snapshotChunk = 1 << 20

// sendSnapshot transfers a MsgSnap and its data on a connection of its
// own, so that the message stream to the peer keeps flowing, and ends
// with ReportSnapshot (unless the transport stopped meanwhile).
func (t *Transport) sendSnapshot(p *peer, m raftpb.Message) {
	log := t.log.With("remote-peer-id", idString(m.To), "snapshot-index", m.Snapshot.Metadata.Index)
	t.goTracked(func() {
		var err error
		if p == nil {
			err = errors.New("unknown peer")
		} else {
			log.Info("sending database snapshot")
			err = t.transferSnapshot(p, m)
		}
		if t.ctx.Err() != nil {
			return
		}
		if err != nil {
			log.Warn("failed to send snapshot", "error", err)
			t.unreachable.report(m.To)
			t.cfg.Raft.ReportSnapshot(m.To, raft.SnapshotFailure)
			return
		}
		log.Info("sent database snapshot")
		t.cfg.Raft.ReportSnapshot(m.To, raft.SnapshotFinish)
	})
}

func (t *Transport) transferSnapshot(p *peer, m raftpb.Message) error {
	head, err := m.Marshal()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(p.ctx)
	defer cancel()
	cs, closeConn, err := t.openSnapshotStream(ctx, p)
	if err != nil {
		return err
	}
	defer closeConn()

	data, err := t.cfg.Snapshots.Open(m)
	if err != nil {
		return fmt.Errorf("open snapshot data: %w", err)
	}
	defer data.Close()

	h := header{kind: kindSnapshotHead, from: t.cfg.ID, to: p.id, cluster: t.cfg.ClusterID}
	if err := cs.SendMsg(&frame{b: append(h.appendTo(nil), head...)}); err != nil {
		return snapshotStreamErr(cs, err)
	}
	h.kind = kindSnapshotChunk
	for {
		// A fresh buffer per frame: gRPC may still hold the previous one.
		b := h.appendTo(make([]byte, 0, maxHeaderLen+snapshotChunk))
		n, rerr := io.ReadFull(data, b[len(b):cap(b)])
		if n > 0 {
			if err := cs.SendMsg(&frame{b: b[:len(b)+n]}); err != nil {
				return snapshotStreamErr(cs, err)
			}
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			return fmt.Errorf("read snapshot data: %w", rerr)
		}
	}
	if err := cs.CloseSend(); err != nil {
		return err
	}
	var reply frame
	if err := cs.RecvMsg(&reply); err != nil {
		return err
	}
	rh, _, err := parseHeader(reply.b)
	if err != nil || rh.kind != kindReply || rh.cluster != t.cfg.ClusterID {
		return fmt.Errorf("bad snapshot acknowledgement from member %s", idString(p.id))
	}
	return nil
}

// snapshotStreamErr returns the server's reason when a send failed
// because the server ended the stream.
func snapshotStreamErr(cs grpc.ClientStream, err error) error {
	if errors.Is(err, io.EOF) {
		if rerr := cs.RecvMsg(&frame{}); rerr != nil && !errors.Is(rerr, io.EOF) {
			return rerr
		}
	}
	return err
}

// openSnapshotStream tries the peer's URLs in turn, each on a new
// connection, until one accepts a snapshot stream.
func (t *Transport) openSnapshotStream(ctx context.Context, p *peer) (grpc.ClientStream, func(), error) {
	p.mu.Lock()
	urls := append(append([]string(nil), p.urls[p.next%max(1, len(p.urls)):]...), p.urls[:p.next%max(1, len(p.urls))]...)
	p.mu.Unlock()
	if len(urls) == 0 {
		return nil, nil, fmt.Errorf("member %s has no peer URLs", idString(p.id))
	}
	ctx = metadata.NewOutgoingContext(ctx, metadata.Pairs(
		mdFrom, idString(t.cfg.ID), mdTo, idString(p.id), mdCluster, idString(t.cfg.ClusterID)))
	var errs []error
	for _, u := range urls {
		conn, err := t.dial(u)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		sctx, cancel := context.WithCancel(ctx)
		opened := time.AfterFunc(t.cfg.DialTimeout, cancel)
		cs, err := conn.NewStream(sctx, &serviceDesc.Streams[1], methodSnapshot)
		var md metadata.MD
		if err == nil {
			md, _ = cs.Header()
		}
		if !opened.Stop() {
			err = fmt.Errorf("no answer within %v", t.cfg.DialTimeout)
		} else if err == nil && md == nil {
			err = snapshotStreamErr(cs, io.EOF)
			if err == nil || errors.Is(err, io.EOF) {
				err = errors.New("stream closed by peer")
			}
		}
		if err != nil {
			cancel()
			conn.Close()
			errs = append(errs, fmt.Errorf("%s: %w", u, err))
			continue
		}
		return cs, func() { cancel(); conn.Close() }, nil
	}
	return nil, nil, errors.Join(errs...)
}

// snapshot receives a MsgSnap: the message, then its data, which
// Snapshots.Receive consumes completely before raft sees the message.
func (s *server) snapshot(ss grpc.ServerStream) error {
	from, err := s.openStream(ss.Context(), kindSnapshotHead)
	if err != nil {
		return err
	}
	if err := ss.SendHeader(metadata.Pairs(mdFrom, idString(s.cfg.ID), mdCluster, idString(s.cfg.ClusterID))); err != nil {
		return err
	}
	return s.serve(ss, func(ctx context.Context) error {
		var f frame
		if err := ss.RecvMsg(&f); err != nil {
			return err
		}
		h, body, err := parseHeader(f.b)
		if err != nil {
			return status.Error(codes.InvalidArgument, err.Error())
		}
		if err := s.checkHeader(h, kindSnapshotHead); err != nil {
			return err
		}
		var m raftpb.Message
		if err := m.Unmarshal(body); err != nil || m.Type != raftpb.MsgSnap || h.from != from {
			return status.Error(codes.InvalidArgument, "snapshot stream must start with the sender's MsgSnap")
		}
		log := s.log.With("local-member-id", idString(s.cfg.ID), "remote-snapshot-sender-id", idString(from), "incoming-snapshot-index", m.Snapshot.Metadata.Index)
		log.Info("receiving database snapshot")
		r := &chunkReader{ss: ss, s: s, from: from}
		if err := s.cfg.Snapshots.Receive(ctx, m, r); err != nil {
			if r.err != nil && !errors.Is(r.err, io.EOF) {
				return r.err
			}
			log.Warn("failed to receive snapshot", "error", err)
			return status.Errorf(codes.Internal, "receive snapshot: %v", err)
		}
		if n, err := r.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
			if err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			return status.Error(codes.Internal, "receive snapshot: data left unread")
		}
		if err := s.cfg.Raft.Process(ctx, m); err != nil {
			return status.Errorf(codes.Internal, "process snapshot message: %v", err)
		}
		log.Info("received and saved database snapshot")
		rh := header{kind: kindReply, from: s.cfg.ID, to: from, cluster: s.cfg.ClusterID}
		return ss.SendMsg(&frame{b: rh.appendTo(nil)})
	})
}

// chunkReader reads the data frames of a snapshot stream; it returns
// io.EOF at the end of the stream and any other error for good.
type chunkReader struct {
	ss   grpc.ServerStream
	s    *server
	from uint64
	buf  []byte
	err  error
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		var f frame
		if err := r.ss.RecvMsg(&f); err != nil {
			r.err = err
			return 0, err
		}
		h, body, err := parseHeader(f.b)
		if err == nil {
			err = r.s.checkHeader(h, kindSnapshotChunk)
		}
		if err == nil && h.from != r.from {
			err = status.Error(codes.InvalidArgument, "snapshot data from another sender")
		}
		if err != nil {
			if _, ok := status.FromError(err); !ok {
				err = status.Error(codes.InvalidArgument, err.Error())
			}
			r.err = err
			return 0, err
		}
		r.buf = body
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

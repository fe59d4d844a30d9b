package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
)

// Batching: the stream loop drains its queue into one frame until the
// frame holds maxBatchBytes or maxBatchMessages.
const (
	maxBatchBytes    = 1 << 20
	maxBatchMessages = 4096
)

// peer is the sending side towards one member. Its loop owns the stream;
// the connection is shared with Call.
type peer struct {
	t     *Transport
	id    uint64
	queue chan raftpb.Message

	// ctx ends when the peer is removed or the transport stops.
	ctx    context.Context
	cancel context.CancelFunc

	// activeSince is the UnixNano time the current stream became healthy,
	// or 0 while there is none.
	activeSince atomic.Int64

	// reset wakes the loop to reconnect after the URLs changed.
	reset chan struct{}

	mu           sync.Mutex
	urls         []string
	next         int              // index in urls of the URL to use
	conn         *grpc.ClientConn // to urls[next], or nil
	connURL      string
	cancelStream context.CancelFunc // ends the current stream, or nil
}

func newPeer(t *Transport, id uint64, urls []string) *peer {
	ctx, cancel := context.WithCancel(t.ctx)
	return &peer{
		t:      t,
		id:     id,
		queue:  make(chan raftpb.Message, t.cfg.QueueSize),
		ctx:    ctx,
		cancel: cancel,
		reset:  make(chan struct{}, 1),
		urls:   slices.Clone(urls),
	}
}

func (p *peer) setURLs(urls []string) {
	p.mu.Lock()
	p.urls = slices.Clone(urls)
	p.next = 0
	if p.conn != nil {
		p.conn.Close()
		p.conn, p.connURL = nil, ""
	}
	if p.cancelStream != nil {
		p.cancelStream()
	}
	p.mu.Unlock()
	select {
	case p.reset <- struct{}{}:
	default:
	}
}

// clientConn returns the connection to the current URL, creating it.
func (p *peer) clientConn() (*grpc.ClientConn, string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ctx.Err() != nil {
		return nil, "", p.ctx.Err()
	}
	if len(p.urls) == 0 {
		return nil, "", fmt.Errorf("member %s has no peer URLs", idString(p.id))
	}
	u := p.urls[p.next%len(p.urls)]
	if p.conn != nil && p.connURL == u {
		return p.conn, u, nil
	}
	if p.conn != nil {
		p.conn.Close()
	}
	conn, err := p.t.dial(u)
	if err != nil {
		return nil, u, err
	}
	p.conn, p.connURL = conn, u
	return conn, u, nil
}

// failedURL moves on to the next URL if u is still the current one.
func (p *peer) failedURL(u string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.urls) > 1 && p.urls[p.next%len(p.urls)] == u {
		p.next = (p.next + 1) % len(p.urls)
	}
}

func (p *peer) closeConn() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn != nil {
		p.conn.Close()
		p.conn, p.connURL = nil, ""
	}
}

// run keeps a stream to the peer open and feeds it from the queue until
// the peer is removed. While there is no stream, queued messages are
// dropped and the peer reported unreachable: raft resends, and stale
// messages would only delay fresh ones.
func (p *peer) run() {
	defer p.closeConn()
	log := p.t.log.With("remote-peer-id", idString(p.id))
	wait := p.t.cfg.RetryInterval
	failures := 0 // since the last healthy stream
	for p.ctx.Err() == nil {
		err := p.stream(log)
		if p.ctx.Err() != nil {
			return
		}
		if errors.Is(err, errReset) {
			wait, failures = p.t.cfg.RetryInterval, 0
			continue
		}
		if errors.Is(err, errWasActive) {
			wait, failures = p.t.cfg.RetryInterval, 0
		}
		p.t.unreachable.report(p.id)
		if failures == 0 {
			log.Warn("peer stream failed", "error", err)
		} else {
			log.Debug("peer stream failed", "error", err, "failures", failures+1)
		}
		failures++
		if !p.dropFor(wait) {
			wait = p.t.cfg.RetryInterval
			continue
		}
		wait = min(2*wait, p.t.cfg.MaxRetryInterval)
	}
}

var (
	errReset     = errors.New("peer URLs changed")
	errWasActive = errors.New("stream was healthy")
)

// dropFor waits d, dropping queued messages meanwhile. It returns false
// early if the URLs changed or the peer ended.
func (p *peer) dropFor(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
			return true
		case <-p.ctx.Done():
			return false
		case <-p.reset:
			return false
		case <-p.queue:
			p.t.unreachable.report(p.id)
		}
	}
}

// stream opens one message stream and pumps the queue into it until it
// fails. An error wrapping errWasActive means the stream had been healthy.
func (p *peer) stream(log *slog.Logger) error {
	ctx, cancel := context.WithCancel(p.ctx)
	defer cancel()
	p.mu.Lock()
	p.cancelStream = cancel // before choosing the connection, so setURLs cannot slip between
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.cancelStream = nil
		p.mu.Unlock()
	}()
	conn, u, err := p.clientConn()
	if err != nil {
		p.failedURL(u)
		return err
	}

	ctx = metadata.NewOutgoingContext(ctx, metadata.Pairs(
		mdFrom, idString(p.t.cfg.ID), mdTo, idString(p.id), mdCluster, idString(p.t.cfg.ClusterID)))
	opened := time.AfterFunc(p.t.cfg.DialTimeout, cancel)
	cs, err := conn.NewStream(ctx, &serviceDesc.Streams[0], methodMessages)
	if err != nil {
		opened.Stop()
		p.failedURL(u)
		return p.streamErr(err, "open stream to %s", u)
	}
	md, _ := cs.Header()
	if !opened.Stop() {
		p.failedURL(u)
		return fmt.Errorf("open stream to %s: no answer within %v", u, p.t.cfg.DialTimeout)
	}
	if md == nil { // the server refused the stream; RecvMsg says why
		err := cs.RecvMsg(&frame{})
		p.failedURL(u)
		return p.streamErr(err, "open stream to %s", u)
	}
	if got := md.Get(mdCluster); len(got) != 1 || got[0] != idString(p.t.cfg.ClusterID) {
		p.failedURL(u)
		return fmt.Errorf("open stream to %s: peer is in cluster %v, not %s", u, got, idString(p.t.cfg.ClusterID))
	}

	// The server never sends; RecvMsg returns when the stream ends, which
	// ends the pump even while it is idle.
	ended := make(chan error, 1)
	go func() {
		err := cs.RecvMsg(&frame{})
		cancel()
		ended <- err
	}()
	p.activeSince.Store(time.Now().UnixNano())
	log.Info("peer stream connected", "url", u)
	err = p.pump(ctx, cs)
	p.activeSince.Store(0)
	cancel()
	if rerr := <-ended; rerr != nil && !errors.Is(rerr, io.EOF) && (err == nil || errors.Is(err, io.EOF) || errors.Is(err, context.Canceled)) {
		err = rerr // the server's status says more than the send error
	}
	if p.ctx.Err() != nil {
		return p.ctx.Err()
	}
	select {
	case <-p.reset:
		return errReset
	default:
	}
	return fmt.Errorf("%w: stream to %s: %w", errWasActive, u, err)
}

func (p *peer) streamErr(err error, format string, args ...any) error {
	if err == nil || errors.Is(err, io.EOF) {
		err = errors.New("stream closed by peer")
	}
	return fmt.Errorf(format+": %w", append(args, err)...)
}

// pump sends queued messages in order, as many per frame as are waiting.
func (p *peer) pump(ctx context.Context, cs grpc.ClientStream) error {
	h := header{kind: kindMessages, from: p.t.cfg.ID, to: p.id, cluster: p.t.cfg.ClusterID}
	batch := make([]raftpb.Message, 0, 64)
	sizes := make([]int, 0, 64)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case m := <-p.queue:
			batch = append(batch[:0], m)
			sizes = append(sizes[:0], m.Size())
		}
		total := sizes[0]
	drain:
		for total < maxBatchBytes && len(batch) < maxBatchMessages {
			select {
			case m := <-p.queue:
				batch = append(batch, m)
				sizes = append(sizes, m.Size())
				total += sizes[len(sizes)-1]
			default:
				break drain
			}
		}
		b, err := encodeMessages(h, batch, sizes)
		clear(batch) // let the entries go
		if err != nil {
			return err
		}
		if err := cs.SendMsg(&frame{b: b}); err != nil {
			return err
		}
	}
}

// dial returns a lazily connecting client for a peer URL: http is
// plaintext, https uses the client TLS configuration.
func (t *Transport) dial(rawURL string) (*grpc.ClientConn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("peer URL %q: %w", rawURL, err)
	}
	var creds credentials.TransportCredentials
	switch u.Scheme {
	case "http":
		creds = insecure.NewCredentials()
	case "https":
		cfg := t.cfg.ClientTLS
		if cfg == nil {
			cfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		creds = credentials.NewTLS(cfg.Clone())
	default:
		return nil, fmt.Errorf("peer URL %q: scheme must be http or https", rawURL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("peer URL %q has no host", rawURL)
	}
	return grpc.NewClient("passthrough:///"+u.Host,
		grpc.WithTransportCredentials(creds),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay:  t.cfg.RetryInterval,
				Multiplier: 2,
				Jitter:     0.2,
				MaxDelay:   t.cfg.MaxRetryInterval,
			},
			MinConnectTimeout: t.cfg.DialTimeout,
		}),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:                t.cfg.KeepaliveTime,
			Timeout:             t.cfg.KeepaliveTime,
			PermitWithoutStream: true,
		}),
		grpc.WithDefaultCallOptions(
			grpc.ForceCodecV2(codec{}),
			grpc.MaxCallRecvMsgSize(math.MaxInt32),
			grpc.MaxCallSendMsgSize(math.MaxInt32),
		),
	)
}

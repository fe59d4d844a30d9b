package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	grpchealth "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/sett-dev/sett/etcdapi"
	"github.com/sett-dev/sett/metrics"
	"github.com/sett-dev/sett/storage"
	"github.com/sett-dev/sett/version"
)

// frontend is everything that serves clients around the gRPC services:
// TLS, the HTTP endpoints sharing the client ports with gRPC, the metrics
// listeners, the quota and metrics interceptors, and the Maintenance,
// Cluster and gRPC health services.
type frontend struct {
	cfg       Config
	log       *slog.Logger
	store     *storage.Store
	memberID  uint64
	space     *storage.SpaceMeter
	metrics   *metrics.Metrics
	http      *httpAPI
	clientTLS *tls.Config
	health    *grpchealth.Server
	hashes    *etcdapi.CompactionHashes
	// ready is closed once the member may serve clients (it joined the
	// cluster's log and published itself): requests wait for it, as etcd's.
	ready <-chan struct{}
	raft  metrics.RaftState

	mu      sync.Mutex
	gateway *gateway // nil without --enable-grpc-gateway
	bases   []net.Listener
	servers []*http.Server
	closed  bool
}

func newFrontend(cfg Config, store *storage.Store, memberID uint64, raft metrics.RaftState) (*frontend, error) {
	f := &frontend{cfg: cfg, log: cfg.Logger, store: store, memberID: memberID, hashes: etcdapi.NewCompactionHashes(), raft: raft}
	f.space = storage.NewSpaceMeter(store, 250*time.Millisecond)
	f.metrics = metrics.New(metrics.Source{
		MemberID:       memberID,
		ServerVersion:  version.Server,
		ClusterVersion: version.ClusterMinor,
		// etcd reports the flag as given (negative: no quota), 0 as its default.
		QuotaBytes: max(etcdapi.QuotaBytes(cfg.QuotaBackendBytes), cfg.QuotaBackendBytes),
		Extensive:  cfg.Metrics == "extensive",
		Space: func() (int64, int64) {
			sp := f.space.Get()
			return sp.Total, sp.InUse
		},
		Rev:        store.Rev,
		CompactRev: store.CompactRev,
		Raft:       raft,
		Keys: func() (int64, error) {
			resp, err := store.Range(context.Background(), &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, CountOnly: true})
			if err != nil {
				return 0, err
			}
			return resp.Count, nil
		},
		KeysMaxAge: 10 * time.Second,
		Alarms: func() [][2]string {
			var out [][2]string
			for _, a := range store.Alarms(pb.AlarmType_NONE) {
				out = append(out, [2]string{fmt.Sprintf("%x", a.MemberID), a.Alarm.String()})
			}
			return out
		},
	})
	f.http = &httpAPI{store: store, metrics: f.metrics, log: cfg.Logger, pprof: cfg.EnablePprof,
		hostWhitelist: cfg.HostWhitelist, cors: cfg.CORS}
	hosts := urlHosts(append(append([]string(nil), cfg.ListenClientURLs...), cfg.AdvertiseClientURLs...))
	var err error
	if f.clientTLS, err = serverTLSConfig(cfg.ClientTLS, cfg.TLS, cfg.DataDir, "client", hosts, cfg.Logger); err != nil {
		return nil, err
	}
	return f, nil
}

// Metrics are the member's metrics (for hooks elsewhere, e.g. commit
// latency).
func (s *Server) Metrics() *metrics.Metrics {
	if s.front == nil {
		return nil
	}
	return s.front.metrics
}

// unaryInterceptors log slow calls, count calls, then enforce the backend
// quota.
func (f *frontend) unaryInterceptors(api *etcdapi.Server) grpc.ServerOption {
	return grpc.ChainUnaryInterceptor(
		requestStats(f.log, f.cfg.WarningUnaryRequestDuration),
		f.waitReadyUnary,
		f.metrics.UnaryServerInterceptor(),
		api.QuotaInterceptor(etcdapi.QuotaConfig{
			Store: f.store, Space: f.space, QuotaBackendBytes: f.cfg.QuotaBackendBytes, Hashes: f.hashes, Logger: f.log,
		}),
	)
}

func (f *frontend) streamInterceptors() grpc.ServerOption {
	return grpc.ChainStreamInterceptor(f.waitReadyStream, f.metrics.StreamServerInterceptor())
}

// register adds the Maintenance, Cluster and gRPC health services, then
// creates the gRPC metrics of every registered method. Call it after the
// other services are registered.
func (f *frontend) register(g *grpc.Server, api *etcdapi.Server) {
	var defragStart atomic.Int64
	pb.RegisterMaintenanceServer(g, api.Maintenance(etcdapi.MaintenanceConfig{
		Store: f.store, Space: f.space, QuotaBackendBytes: f.cfg.QuotaBackendBytes, Hashes: f.hashes, Logger: f.log,
		DefragHook: func(running bool) {
			if running {
				defragStart.Store(time.Now().UnixNano())
			}
			f.metrics.Defrag(running, time.Duration(time.Now().UnixNano()-defragStart.Load()))
			f.defragHealth(running)
		},
	}))
	pb.RegisterClusterServer(g, api.Cluster())
	f.health = grpchealth.NewServer()
	healthpb.RegisterHealthServer(g, f.health)
	f.metrics.InitializeGRPC(g)
}

// serveClient opens one client URL (http, https, unix or unixs) and
// serves gRPC and etcd's HTTP endpoints on it, as etcd does: a connection
// that opens with the HTTP/2 preface goes to the gRPC server's native
// transport, anything else to the HTTP server. Over TLS, where HTTP/2 is
// also what browsers and curl speak, the first request's content-type
// decides.
func (f *frontend) serveClient(raw string, g *grpc.Server, errc chan<- error) (net.Listener, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid listen URL %q: %w", raw, err)
	}
	secure := u.Scheme == "https" || u.Scheme == "unixs"
	var tlsCfg *tls.Config
	switch {
	case secure && f.clientTLS == nil:
		return nil, fmt.Errorf("TLS key/cert (--cert-file, --key-file) must be provided for client url %s with HTTPS scheme", raw)
	case secure:
		tlsCfg = f.clientTLS
	case f.clientTLS != nil:
		f.log.Warn("scheme is HTTP while key and cert files are present; ignoring key and cert files", "client-url", raw)
	}
	base, err := listenURL(u, raw, f.cfg.SocketOpts)
	if err != nil {
		return nil, err
	}
	grpcL := newChanListener(base.Addr())
	httpL := newChanListener(base.Addr())
	srv := f.newHTTPServer(f.http.clientHandler())
	if !f.track(base, srv) {
		base.Close()
		return nil, errors.New("server is shutting down")
	}
	m := &connMux{base: base, tls: tlsCfg, grpc: grpcL, http: httpL, log: f.log, bounds: f.cfg.bounds.orDefault()}
	if len(f.cfg.ListenClientHTTPURLs) > 0 {
		m.http = nil // HTTP has its own URLs
	}
	go func() {
		if err := m.run(); err != nil && !f.isClosed() {
			errc <- err
		}
		httpL.Close()
	}()
	go func() {
		if err := g.Serve(grpcL); err != nil && !errors.Is(err, grpc.ErrServerStopped) && !f.isClosed() {
			errc <- err
		}
	}()
	go func() {
		if err := srv.Serve(httpL); err != nil && !errors.Is(err, http.ErrServerClosed) && !f.isClosed() {
			errc <- err
		}
	}()
	return base, nil
}

// serveHTTPOnly opens --listen-metrics-urls (/metrics and the health
// endpoints) and --listen-client-http-urls (every HTTP endpoint of the
// client URLs).
func (f *frontend) serveHTTPOnly(errc chan<- error) error {
	for _, u := range f.cfg.ListenMetricsURLs {
		if _, err := f.serveHTTP(u, "metrics", f.http.metricsHandler(), errc); err != nil {
			return err
		}
	}
	for _, u := range f.cfg.ListenClientHTTPURLs {
		if _, err := f.serveHTTP(u, "client HTTP", f.http.clientHandler(), errc); err != nil {
			return err
		}
	}
	return nil
}

// serveHTTP serves h on one URL, over HTTP (or HTTPS with the client
// certificate).
func (f *frontend) serveHTTP(raw, what string, h http.Handler, errc chan<- error) (net.Listener, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid %s URL %q: %w", what, raw, err)
	}
	secure := u.Scheme == "https" || u.Scheme == "unixs"
	if secure && f.clientTLS == nil {
		return nil, fmt.Errorf("TLS key/cert (--cert-file, --key-file) must be provided for %s url %s with HTTPS scheme", what, raw)
	}
	l, err := listenURL(u, raw, f.cfg.SocketOpts)
	if err != nil {
		return nil, err
	}
	if secure {
		cfg := f.clientTLS.Clone()
		cfg.NextProtos = []string{"h2", "http/1.1"}
		l = tls.NewListener(l, cfg)
	}
	srv := f.newHTTPServer(h)
	if !f.track(l, srv) {
		l.Close()
		return nil, errors.New("server is shutting down")
	}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) && !f.isClosed() {
			errc <- err
		}
	}()
	f.log.Info("serving "+what, "address", l.Addr().String(), "url", raw)
	return l, nil
}

func (f *frontend) newHTTPServer(h http.Handler) *http.Server {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: f.cfg.bounds.orDefault().Header,
		ErrorLog:          slog.NewLogLogger(f.log.Handler(), slog.LevelDebug),
	}
	// On the client URLs connections arrive with TLS already terminated
	// (and HTTP/2 sniffed), so HTTP/2 is served as on a cleartext
	// connection; on HTTP-only URLs, TLS listeners negotiate it.
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetHTTP2(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	return srv
}

func (f *frontend) track(l net.Listener, srv *http.Server) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.bases = append(f.bases, l)
	f.servers = append(f.servers, srv)
	return true
}

func (f *frontend) isClosed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}

// shutdown stops accepting connections and ends the HTTP servers (their
// requests get until ctx's deadline). The gRPC server is stopped by its
// owner; its listeners get no new connections once these are closed.
func (f *frontend) shutdown(ctx context.Context) {
	if f == nil {
		return
	}
	f.mu.Lock()
	f.closed = true
	bases, servers, gwy := f.bases, f.servers, f.gateway
	f.mu.Unlock()
	if f.health != nil {
		f.health.Shutdown()
	}
	for _, l := range bases {
		l.Close()
	}
	for _, srv := range servers {
		if err := srv.Shutdown(ctx); err != nil {
			srv.Close()
		}
	}
	// The gateway's connection would otherwise hold up the gRPC server's
	// graceful stop.
	if gwy != nil {
		gwy.close()
	}
}

// listenURL opens a TCP (http, https) or unix socket (unix, unixs)
// listener.
func listenURL(u *url.URL, raw string, opts SocketOptions) (net.Listener, error) {
	switch u.Scheme {
	case "http", "https":
		return opts.listen("tcp", u.Host)
	case "unix", "unixs":
		return net.Listen("unix", strings.TrimPrefix(raw, u.Scheme+"://"))
	default:
		return nil, fmt.Errorf("listen URL %q: unsupported scheme %q", raw, u.Scheme)
	}
}

// connMux hands each accepted connection to the gRPC or the HTTP
// listener, after TLS termination.
type connMux struct {
	base       net.Listener
	tls        *tls.Config
	grpc, http *chanListener
	log        *slog.Logger
	bounds     connBounds
}

func (m *connMux) run() error {
	for {
		c, err := m.base.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go m.dispatch(c)
	}
}

var clientPreface = []byte(http2.ClientPreface)

// dispatch terminates TLS and sniffs the protocol, each within its bound
// (a connection that exceeds one is closed), then hands c over. The
// deadline is cleared for the server that takes it.
func (m *connMux) dispatch(c net.Conn) {
	if m.tls != nil {
		tc, err := handshake(c, m.tls, m.bounds.Handshake)
		if err != nil {
			m.log.Debug("TLS handshake failed", "remote", c.RemoteAddr().String(), "err", err)
			c.Close()
			return
		}
		c = tc
	}
	c.SetDeadline(time.Now().Add(m.bounds.FirstBytes))
	br := bufio.NewReader(c)
	if m.tls == nil {
		isTLS, err := firstByteIsTLS(br)
		if err != nil {
			c.Close()
			return
		}
		if isTLS {
			m.log.Debug("TLS handshake on a plain client URL", "remote", c.RemoteAddr().String())
			refusePlainTLS(c)
			c.Close()
			return
		}
	}
	isH2 := true
	for n := 1; n <= len(clientPreface); n++ {
		b, err := br.Peek(n)
		if err != nil {
			c.Close()
			return
		}
		if b[n-1] != clientPreface[n-1] {
			isH2 = false
			break
		}
	}
	toGRPC := isH2
	var r io.Reader = br
	if isH2 && m.tls != nil {
		// Over TLS, HTTP/2 may be gRPC or an HTTP client: read up to the
		// first request's headers to tell.
		var err error
		toGRPC, r, err = sniffHTTP2(c, br)
		if err != nil {
			m.log.Debug("HTTP/2 sniffing failed", "remote", c.RemoteAddr().String(), "err", err)
			c.Close()
			return
		}
	}
	c.SetDeadline(time.Time{})
	pc := &prefixConn{Conn: c, r: r}
	dst := m.http
	if toGRPC {
		dst = m.grpc
	}
	if dst == nil || !dst.deliver(pc) {
		c.Close()
	}
}

// sniffHTTP2 reads an HTTP/2 connection up to its first HEADERS frame and
// reports whether the request is gRPC. Since some clients (gRPC among
// them) wait for the server's SETTINGS before sending a request, an empty
// SETTINGS frame is sent first; the client's acknowledgement of it is
// removed from what the real server will read, which would otherwise see
// an acknowledgement of settings it never sent. The returned reader
// replays everything read. A client that sends its preface but no
// request before the connection's deadline is taken for an idle gRPC
// client.
func sniffHTTP2(c net.Conn, br *bufio.Reader) (bool, io.Reader, error) {
	preface := make([]byte, len(clientPreface))
	if _, err := io.ReadFull(br, preface); err != nil {
		return false, nil, err
	}
	// An empty SETTINGS frame: length 0, type 4, no flags, stream 0.
	if _, err := c.Write([]byte{0, 0, 0, 4, 0, 0, 0, 0, 0}); err != nil {
		return false, nil, err
	}
	var seen bytes.Buffer
	fr := http2.NewFramer(io.Discard, io.TeeReader(br, &seen))
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.MaxHeaderListSize = 1 << 20
	isGRPC := true
	for i := 0; ; i++ {
		if i > 64 {
			return false, nil, errors.New("no request headers")
		}
		frame, err := fr.ReadFrame()
		if isTimeout(err) {
			break
		}
		if err != nil {
			return false, nil, err
		}
		if h, ok := frame.(*http2.MetaHeadersFrame); ok {
			isGRPC = strings.HasPrefix(contentType(h), "application/grpc")
			break
		}
	}
	rest := io.MultiReader(bytes.NewReader(seen.Bytes()), br)
	return isGRPC, io.MultiReader(bytes.NewReader(preface), &settingsAckFilter{r: rest}), nil
}

func contentType(h *http2.MetaHeadersFrame) string {
	for _, f := range h.Fields {
		if f.Name == "content-type" {
			return f.Value
		}
	}
	return ""
}

// settingsAckFilter passes HTTP/2 frames through, except the first
// SETTINGS acknowledgement, which answers the sniffer's SETTINGS.
type settingsAckFilter struct {
	r       io.Reader
	dropped bool
	pending []byte
}

func (f *settingsAckFilter) Read(p []byte) (int, error) {
	for len(f.pending) == 0 {
		if f.dropped {
			return f.r.Read(p)
		}
		var hdr [9]byte
		if _, err := io.ReadFull(f.r, hdr[:]); err != nil {
			return 0, err
		}
		n := int(binary.BigEndian.Uint32(append([]byte{0}, hdr[:3]...)))
		if hdr[3] == 4 && hdr[4]&1 != 0 && n == 0 {
			f.dropped = true
			continue
		}
		frame := make([]byte, 9+n)
		copy(frame, hdr[:])
		if _, err := io.ReadFull(f.r, frame[9:]); err != nil {
			return 0, err
		}
		f.pending = frame
	}
	n := copy(p, f.pending)
	f.pending = f.pending[n:]
	return n, nil
}

// prefixConn is a connection whose first bytes were already read: they
// are replayed from r, then reads go straight to the connection.
type prefixConn struct {
	net.Conn
	r io.Reader
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if c.r != nil {
		n, err := c.r.Read(p)
		if n > 0 || err != io.EOF {
			if br, ok := c.r.(*bufio.Reader); ok && err == nil && br.Buffered() == 0 {
				c.r = nil // the sniffed prefix is consumed
			}
			return n, err
		}
		c.r = nil
	}
	return c.Conn.Read(p)
}

// chanListener is a net.Listener fed by a connMux.
type chanListener struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) deliver(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// Package server assembles a sett member: storage, the write path, the etcd
// gRPC services and the client listeners.
package server

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"runtime"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/sett-dev/sett/etcdapi"
	"github.com/sett-dev/sett/lease"
	"github.com/sett-dev/sett/replication"
	"github.com/sett-dev/sett/storage"
	"github.com/sett-dev/sett/watchhub"
)

// Config is a member's configuration, named after etcd's flags.
type Config struct {
	Name                     string
	DataDir                  string
	ListenClientURLs         []string
	AdvertiseClientURLs      []string
	ListenPeerURLs           []string
	InitialAdvertisePeerURLs []string
	InitialCluster           string
	InitialClusterState      string
	InitialClusterToken      string
	MaxTxnOps                int
	MaxRequestBytes          int
	QuotaBackendBytes        int64
	EnablePprof              bool // serve /debug/pprof on the client URLs
	GRPCKeepAliveMinTime     time.Duration
	GRPCKeepAliveInterval    time.Duration
	GRPCKeepAliveTimeout     time.Duration

	// WatchProgressNotifyInterval is etcd's --watch-progress-notify-interval
	// (0: etcd's default, 10 minutes).
	WatchProgressNotifyInterval time.Duration

	// ListenMetricsURLs serve /metrics and the health endpoints (etcd's
	// --listen-metrics-urls). ClientTLS and PeerTLS are etcd's TLS flags of
	// each side (the peer ones are kept for when sett replicates); TLS
	// holds the flags both share.
	ListenMetricsURLs []string
	// ListenClientHTTPURLs serve etcd's HTTP endpoints apart from gRPC,
	// which the client URLs then serve alone.
	ListenClientHTTPURLs []string
	ClientTLS            TLSInfo
	PeerTLS              TLSInfo
	TLS                  TLSOptions

	Storage storage.Options
	Logger  *slog.Logger
}

// DefaultConfig is what `sett` runs with and no flags.
func DefaultConfig() Config {
	return Config{
		Name:                     "default",
		ListenClientURLs:         []string{"http://localhost:2379"},
		AdvertiseClientURLs:      []string{"http://localhost:2379"},
		ListenPeerURLs:           []string{"http://localhost:2380"},
		InitialAdvertisePeerURLs: []string{"http://localhost:2380"},
		InitialClusterState:      "new",
		InitialClusterToken:      "etcd-cluster",
		MaxTxnOps:                etcdapi.DefaultMaxTxnOps,
		MaxRequestBytes:          etcdapi.DefaultMaxRequestBytes,
		GRPCKeepAliveMinTime:     5 * time.Second,
		GRPCKeepAliveInterval:    2 * time.Hour,
		GRPCKeepAliveTimeout:     20 * time.Second,
	}
}

// Server is a running member.
type Server struct {
	cfg       Config
	log       *slog.Logger
	store     *storage.Store
	local     *replication.Local
	hub       *watchhub.Hub
	lessor    *lease.Lessor
	front     *frontend
	grpc      *grpc.Server
	listeners []net.Listener
	errc      chan error

	MemberID  uint64
	ClusterID uint64
}

// Start opens storage, starts the write path and serves clients.
func Start(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.DataDir == "" {
		cfg.DataDir = cfg.Name + ".sett"
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, errc: make(chan error, 8)}
	s.MemberID = MemberID(cfg.InitialAdvertisePeerURLs, cfg.InitialClusterToken)
	s.ClusterID = ClusterID([]uint64{s.MemberID})

	sopts := cfg.Storage
	sopts.Dir = cfg.DataDir
	sopts.Logger = cfg.Logger
	store, err := storage.Open(sopts)
	if err != nil {
		return nil, err
	}
	s.store = store
	// The watch hub sees every revision committed from here on.
	s.hub = watchhub.New(store, watchhub.Config{ProgressInterval: cfg.WatchProgressNotifyInterval, Logger: cfg.Logger})
	s.local, err = replication.NewLocal(store, cfg.Logger, s.hub.Notify)
	if err != nil {
		store.Close()
		return nil, err
	}

	api := etcdapi.New(etcdapi.Config{
		ClusterID:       s.ClusterID,
		MemberID:        s.MemberID,
		MaxTxnOps:       cfg.MaxTxnOps,
		MaxRequestBytes: cfg.MaxRequestBytes,
	}, store, s.local)
	// The lessor follows storage's grants and revokes from here on, and
	// runs expiry and checkpoints (a single member always leads).
	if s.lessor, err = lease.New(lease.Config{Logger: cfg.Logger}, store); err != nil {
		s.local.Stop()
		store.Close()
		return nil, err
	}
	s.lessor.Start(api.LeaseProposer())
	if s.front, err = newFrontend(cfg, store, s.MemberID); err != nil {
		s.Close()
		return nil, err
	}
	s.local.ObserveCommits(s.Metrics().ObserveCommit)
	s.grpc = grpc.NewServer(
		grpc.MaxRecvMsgSize(cfg.MaxRequestBytes+etcdapi.GRPCOverheadBytes),
		grpc.MaxSendMsgSize(math.MaxInt32),
		grpc.MaxConcurrentStreams(math.MaxUint32),
		// Reused workers keep their grown stacks: a fresh goroutine per
		// request spends a fifth of a small request's CPU growing its stack.
		// Streams beyond the workers still get goroutines of their own.
		grpc.NumStreamWorkers(uint32(streamWorkers())),
		s.front.unaryInterceptors(api),
		s.front.streamInterceptors(),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             cfg.GRPCKeepAliveMinTime,
			PermitWithoutStream: false,
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:    cfg.GRPCKeepAliveInterval,
			Timeout: cfg.GRPCKeepAliveTimeout,
		}),
	)
	pb.RegisterKVServer(s.grpc, api.KV())
	pb.RegisterWatchServer(s.grpc, api.Watch(s.hub, cfg.Logger))
	pb.RegisterLeaseServer(s.grpc, api.LeaseWith(s.lessor))
	s.front.register(s.grpc, api)

	for _, u := range cfg.ListenClientURLs {
		l, err := s.front.serveClient(u, s.grpc, s.errc)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.listeners = append(s.listeners, l)
		s.log.Info("serving client traffic", "address", l.Addr().String(), "url", u)
	}
	if err := s.front.serveHTTPOnly(s.errc); err != nil {
		s.Close()
		return nil, err
	}
	s.log.Info("sett member ready", "name", cfg.Name, "data-dir", cfg.DataDir,
		"member-id", fmt.Sprintf("%x", s.MemberID), "cluster-id", fmt.Sprintf("%x", s.ClusterID),
		"revision", store.Rev())
	return s, nil
}

// Addrs are the addresses the client listeners are bound to.
func (s *Server) Addrs() []net.Addr {
	var out []net.Addr
	for _, l := range s.listeners {
		out = append(out, l.Addr())
	}
	return out
}

// Err reports a listener failure.
func (s *Server) Err() <-chan error { return s.errc }

// Store is the member's storage.
func (s *Server) Store() *storage.Store { return s.store }

// Close stops serving (finishing in-flight requests for up to ctx's
// deadline), stops the write path, and closes storage.
func (s *Server) Close() error { return s.Shutdown(context.Background()) }

// Shutdown is Close bounded by ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	// Stopping the lessor first ends keep-alive streams, which would
	// otherwise hold up the graceful stop.
	if s.lessor != nil {
		s.lessor.Stop()
	}
	// Closing the watch hub ends watch streams (etcdserver: server
	// stopped), which would otherwise hold up the graceful stop.
	if s.hub != nil {
		s.hub.Close()
	}
	s.front.shutdown(ctx)
	if s.grpc != nil {
		done := make(chan struct{})
		go func() { s.grpc.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			s.grpc.Stop()
		}
	}
	if s.local != nil {
		s.local.Stop()
	}
	if s.store != nil {
		return s.store.Close()
	}
	return nil
}

// streamWorkers is how many goroutines serve gRPC streams before new ones
// are started: enough for every core to have requests in hand.
func streamWorkers() int { return 16 * runtime.GOMAXPROCS(0) }

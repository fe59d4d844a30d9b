// Package server assembles a sett member: storage, the write path, the etcd
// gRPC services and the client listeners.
package server

import (
	"context"
	"errors"
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

	"github.com/sett-dev/sett/autocompact"
	"github.com/sett-dev/sett/etcdapi"
	"github.com/sett-dev/sett/lease"
	"github.com/sett-dev/sett/replication"
	"github.com/sett-dev/sett/storage"
	"github.com/sett-dev/sett/version"
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
	// HeartbeatInterval and ElectionTimeout are raft's timing (etcd's
	// --heartbeat-interval, --election-timeout); SnapshotCount is
	// --snapshot-count (applied entries between raft snapshots).
	HeartbeatInterval time.Duration
	ElectionTimeout   time.Duration
	SnapshotCount     uint64
	// CatchUpEntries is --snapshot-catchup-entries: entries kept after a
	// snapshot for followers slightly behind.
	CatchUpEntries uint64
	EnablePprof    bool // serve /debug/pprof on the client URLs
	// EnableGRPCGateway serves etcd's JSON gateway under /v3/ on the client
	// URLs (etcd's --enable-grpc-gateway, on by default).
	EnableGRPCGateway     bool
	GRPCKeepAliveMinTime  time.Duration
	GRPCKeepAliveInterval time.Duration
	GRPCKeepAliveTimeout  time.Duration
	// HostWhitelist is --host-whitelist: the Host names plain-HTTP
	// requests may carry (empty or "*": any). CORS is --cors: the origins
	// sent CORS headers (empty or "*": any).
	HostWhitelist, CORS []string
	// StopGRPCServiceOnDefrag is --experimental-stop-grpc-service-on-defrag:
	// gRPC health answers NOT_SERVING while a defragmentation runs.
	StopGRPCServiceOnDefrag bool
	// Metrics is --metrics: "basic" (default) or "extensive" (adds the
	// gRPC handling-time histograms).
	Metrics string
	// SocketOpts are --socket-reuse-port and --socket-reuse-address.
	SocketOpts SocketOptions
	// MaxConcurrentStreams is --max-concurrent-streams: gRPC streams per
	// client connection; 0 means etcd's default, unlimited (2^32-1).
	MaxConcurrentStreams uint32
	// WarningUnaryRequestDuration is --warning-unary-request-duration: a
	// unary call slower than this logs "request stats" at warn level.
	WarningUnaryRequestDuration time.Duration

	// WatchProgressNotifyInterval is etcd's --watch-progress-notify-interval
	// (0: etcd's default, 10 minutes).
	WatchProgressNotifyInterval time.Duration

	// AutoCompactionMode and AutoCompactionRetention are etcd's flags of
	// the same names (see autocompact.ParsePolicy); both empty is off.
	AutoCompactionMode      string
	AutoCompactionRetention string

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
	// Raft is etcd's --wal-dir, --max-learners and --pre-vote.
	Raft replication.Options

	// bounds are the client connections' timeouts (zero: the defaults);
	// tests shorten them.
	bounds connBounds
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
		HeartbeatInterval:        100 * time.Millisecond,
		ElectionTimeout:          time.Second,
		SnapshotCount:            10000,
		AutoCompactionMode:       autocompact.DefaultMode,
		AutoCompactionRetention:  autocompact.DefaultRetention,
		EnableGRPCGateway:        true,
	}
}

// Server is a running member.
type Server struct {
	cfg       Config
	log       *slog.Logger
	store     *storage.Store
	node      *replication.Node
	hub       *watchhub.Hub
	api       *etcdapi.Server
	compactor *autocompact.Runner
	lessor    *lease.Lessor
	front     *frontend
	grpc      *grpc.Server
	listeners []net.Listener
	errc      chan error

	peerGRPC      *grpc.Server
	peerListeners []net.Listener

	MemberID  uint64
	ClusterID uint64
}

// Start opens storage, starts the write path and serves clients.
func Start(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	compaction, err := autoCompactionPolicy(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.DataDir == "" {
		cfg.DataDir = cfg.Name + ".sett"
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, errc: make(chan error, 8)}
	peerTLS, peerClientTLS, err := peerTLSConfigs(cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), startupTimeout)
	defer cancel()
	self, clusterID, initial, err := resolveMembership(ctx, cfg, peerClientTLS)
	if err != nil {
		return nil, err
	}
	s.MemberID, s.ClusterID = self.ID, clusterID

	sopts := cfg.Storage
	sopts.Dir = cfg.DataDir
	sopts.Logger = cfg.Logger
	// The raft log makes entries durable before they are applied.
	sopts.LogDurable = true
	store, err := storage.Open(sopts)
	if err != nil {
		return nil, err
	}
	s.store = store
	// The watch hub sees every revision committed from here on.
	s.hub = watchhub.New(store, watchhub.Config{ProgressInterval: cfg.WatchProgressNotifyInterval, Logger: cfg.Logger})
	electionTicks := 10
	if cfg.HeartbeatInterval > 0 && cfg.ElectionTimeout > 0 {
		electionTicks = max(int(cfg.ElectionTimeout/cfg.HeartbeatInterval), 2)
	}
	s.node, err = replication.New(replication.Config{
		Self:           self,
		InitialCluster: initial,
		Join:           cfg.InitialClusterState == "existing",
		ClusterID:      clusterID,
		ClusterToken:   cfg.InitialClusterToken,
		DataDir:        cfg.DataDir,
		Store:          store,
		Observer:       s.hub.Notify,
		Resync:         s.hub.Resync,
		TickInterval:   cfg.HeartbeatInterval,
		ElectionTicks:  electionTicks,
		SnapshotCount:  cfg.SnapshotCount,
		CatchUpEntries: cfg.CatchUpEntries,
		PeerClientTLS:  peerClientTLS,
		Version:        version.ClusterMinor,
		UnsafeNoSync:   cfg.Storage.UnsafeNoSync,
		Logger:         cfg.Logger,
		Options:        cfg.Raft,
	})
	if err != nil {
		store.Close()
		return nil, err
	}

	api := etcdapi.New(etcdapi.Config{
		ClusterID:       s.ClusterID,
		MemberID:        s.MemberID,
		MaxTxnOps:       cfg.MaxTxnOps,
		MaxRequestBytes: cfg.MaxRequestBytes,
	}, store, s.node)
	s.api = api
	// The lessor follows storage's grants and revokes from here on; it
	// runs expiry and checkpoints while this member leads.
	if s.lessor, err = lease.New(lease.Config{Logger: cfg.Logger}, store); err != nil {
		store.Close()
		return nil, err
	}
	s.node.OnLeadership(func(leader bool) {
		if leader {
			s.lessor.Promote(s.lessor.PromoteExtend())
		} else {
			s.lessor.Demote()
		}
	})
	s.compactor = s.newAutoCompactor(compaction)
	if err := s.servePeers(peerTLS); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.node.Start(ctx); err != nil {
		s.Close()
		return nil, err
	}
	s.lessor.Run(api.LeaseProposer())
	go func() {
		<-s.node.Done()
		s.errc <- errors.New("the raft node stopped")
	}()
	if s.front, err = newFrontend(cfg, store, s.MemberID, s.node); err != nil {
		s.Close()
		return nil, err
	}
	s.front.ready = s.node.Ready()
	s.node.ObserveCommits(s.Metrics().ObserveCommit)
	s.node.ObserveSnapshots(s.Metrics().SnapshotReceived)
	s.compactor.Run()
	s.grpc = grpc.NewServer(
		grpc.MaxRecvMsgSize(cfg.MaxRequestBytes+etcdapi.GRPCOverheadBytes),
		grpc.MaxSendMsgSize(math.MaxInt32),
		grpc.MaxConcurrentStreams(cfg.maxConcurrentStreams()),
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
	pb.RegisterLeaseServer(s.grpc, api.LeaseWith(lease.NewRouter(s.lessor, s.node)))
	s.front.register(s.grpc, api)
	if cfg.EnableGRPCGateway {
		if err := s.front.startGateway(s.grpc, s.errc); err != nil {
			s.Close()
			return nil, err
		}
	}

	for _, u := range cfg.ListenClientURLs {
		l, err := s.front.serveClient(u, s.grpc, s.errc)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.listeners = append(s.listeners, l)
	}
	if err := s.front.serveHTTPOnly(s.errc); err != nil {
		s.Close()
		return nil, err
	}
	s.log.Info("now serving peer/client/metrics", "local-member-id", fmt.Sprintf("%x", s.MemberID),
		"initial-advertise-peer-urls", cfg.InitialAdvertisePeerURLs, "listen-peer-urls", cfg.ListenPeerURLs,
		"advertise-client-urls", cfg.AdvertiseClientURLs, "listen-client-urls", cfg.ListenClientURLs,
		"listen-metrics-urls", cfg.ListenMetricsURLs)
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
	// Auto-compaction proposes writes: it stops before the write path.
	if s.compactor != nil {
		s.compactor.Stop()
	}
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
	if s.node != nil {
		s.node.Stop()
	}
	if s.peerGRPC != nil {
		s.peerGRPC.Stop()
	}
	if s.store != nil {
		return s.store.Close()
	}
	return nil
}

// streamWorkers is how many goroutines serve gRPC streams before new ones
// are started: enough for every core to have requests in hand.
func streamWorkers() int { return 16 * runtime.GOMAXPROCS(0) }

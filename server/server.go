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
	"net/url"
	"os"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/sett-dev/sett/etcdapi"
	"github.com/sett-dev/sett/replication"
	"github.com/sett-dev/sett/storage"
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
	GRPCKeepAliveMinTime     time.Duration
	GRPCKeepAliveInterval    time.Duration
	GRPCKeepAliveTimeout     time.Duration

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
	s.local, err = replication.NewLocal(store, cfg.Logger, nil)
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
	s.grpc = grpc.NewServer(
		grpc.MaxRecvMsgSize(cfg.MaxRequestBytes+etcdapi.GRPCOverheadBytes),
		grpc.MaxSendMsgSize(math.MaxInt32),
		grpc.MaxConcurrentStreams(math.MaxUint32),
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
	pb.RegisterLeaseServer(s.grpc, api.Lease())

	for _, u := range cfg.ListenClientURLs {
		l, err := listen(u)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.listeners = append(s.listeners, l)
		go func() {
			if err := s.grpc.Serve(l); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				s.errc <- err
			}
		}()
		s.log.Info("serving client traffic", "address", l.Addr().String(), "url", u)
	}
	s.log.Info("sett member ready", "name", cfg.Name, "data-dir", cfg.DataDir,
		"member-id", fmt.Sprintf("%x", s.MemberID), "cluster-id", fmt.Sprintf("%x", s.ClusterID),
		"revision", store.Rev())
	return s, nil
}

// listen opens a client URL: http://host:port or unix://path.
func listen(raw string) (net.Listener, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid listen URL %q: %w", raw, err)
	}
	switch u.Scheme {
	case "http", "https":
		if u.Scheme == "https" {
			return nil, fmt.Errorf("listen URL %q: TLS is not supported yet", raw)
		}
		return net.Listen("tcp", u.Host)
	case "unix", "unixs":
		return net.Listen("unix", strings.TrimPrefix(raw, u.Scheme+"://"))
	default:
		return nil, fmt.Errorf("listen URL %q: unsupported scheme %q", raw, u.Scheme)
	}
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

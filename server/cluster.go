package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/sett-dev/sett/replication"
	"github.com/sett-dev/sett/replication/transport"
	"github.com/sett-dev/sett/storage"
)

// parseInitialCluster reads --initial-cluster ("name=url,name=url,…"; a
// name may repeat for several URLs) into members with etcd's IDs.
func parseInitialCluster(s, token string) ([]storage.Member, error) {
	byName := map[string][]string{}
	var order []string
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, u, ok := strings.Cut(part, "=")
		if !ok || name == "" || u == "" {
			return nil, fmt.Errorf("--initial-cluster: %q is not name=URL", part)
		}
		if _, err := url.Parse(u); err != nil {
			return nil, fmt.Errorf("--initial-cluster: %w", err)
		}
		if _, seen := byName[name]; !seen {
			order = append(order, name)
		}
		byName[name] = append(byName[name], u)
	}
	members := make([]storage.Member, 0, len(order))
	for _, name := range order {
		urls := slices.Sorted(slices.Values(byName[name]))
		members = append(members, storage.Member{ID: MemberID(urls, token), Name: name, PeerURLs: urls})
	}
	return members, nil
}

// identity is who this data directory belongs to: written when the member
// first starts, read at every restart (the flags describing the initial
// cluster no longer matter then, as in etcd).
type identity struct {
	MemberID  uint64 `json:"memberID"`
	ClusterID uint64 `json:"clusterID"`
}

func identityPath(dataDir string) string { return filepath.Join(dataDir, "member.json") }

func loadIdentity(dataDir string) (identity, bool, error) {
	b, err := os.ReadFile(identityPath(dataDir))
	if errors.Is(err, os.ErrNotExist) {
		return identity{}, false, nil
	}
	if err != nil {
		return identity{}, false, err
	}
	var id identity
	if err := json.Unmarshal(b, &id); err != nil {
		return identity{}, false, fmt.Errorf("%s: %w", identityPath(dataDir), err)
	}
	return id, true, nil
}

func saveIdentity(dataDir string, id identity) error {
	b, err := json.Marshal(id)
	if err != nil {
		return err
	}
	tmp := identityPath(dataDir) + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err = f.Write(b); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, identityPath(dataDir))
}

// resolveMembership decides this member's ID, the cluster ID and the
// members raft starts with: from the data directory on a restart, from
// --initial-cluster for a new cluster, from the running members when
// joining (--initial-cluster-state=existing).
func resolveMembership(ctx context.Context, cfg Config, peerTLS *tls.Config) (self storage.Member, clusterID uint64, initial []storage.Member, err error) {
	self = storage.Member{Name: cfg.Name, PeerURLs: slices.Sorted(slices.Values(cfg.InitialAdvertisePeerURLs)), ClientURLs: cfg.AdvertiseClientURLs}
	initialFlag := cfg.InitialCluster
	if initialFlag == "" {
		initialFlag = cfg.Name + "=" + strings.Join(cfg.InitialAdvertisePeerURLs, ","+cfg.Name+"=")
	}
	initial, err = parseInitialCluster(initialFlag, cfg.InitialClusterToken)
	if err != nil {
		return self, 0, nil, err
	}
	if id, ok, err := loadIdentity(cfg.DataDir); err != nil || ok {
		self.ID = id.MemberID
		return self, id.ClusterID, initial, err
	}
	if cfg.InitialClusterState == "existing" {
		var others []string
		for _, m := range initial {
			if m.Name != cfg.Name {
				others = append(others, m.PeerURLs...)
			}
		}
		info, err := replication.Discover(ctx, others, peerTLS)
		if err != nil {
			return self, 0, nil, err
		}
		me, ok := replication.SelfIn(info.Members, self.PeerURLs)
		if !ok {
			return self, 0, nil, fmt.Errorf("this member's peer URLs %v are not in the cluster (add it with MemberAdd first)", self.PeerURLs)
		}
		self.ID = me.ID
		return self, info.ClusterID, info.Members, saveIdentity(cfg.DataDir, identity{MemberID: self.ID, ClusterID: info.ClusterID})
	}
	var ids []uint64
	found := false
	for _, m := range initial {
		ids = append(ids, m.ID)
		if m.Name == cfg.Name {
			found = true
			if !slices.Equal(m.PeerURLs, self.PeerURLs) {
				return self, 0, nil, fmt.Errorf("--initial-cluster has %s=%v, but --initial-advertise-peer-urls is %v", m.Name, m.PeerURLs, self.PeerURLs)
			}
			self.ID = m.ID
		}
	}
	if !found {
		return self, 0, nil, fmt.Errorf("--initial-cluster has no member named %q", cfg.Name)
	}
	clusterID = ClusterID(ids)
	return self, clusterID, initial, saveIdentity(cfg.DataDir, identity{MemberID: self.ID, ClusterID: clusterID})
}

// servePeers serves the raft transport on --listen-peer-urls.
func (s *Server) servePeers(peerTLS *tls.Config) error {
	opts := transport.ServerOptions()
	secure := false
	for _, raw := range s.cfg.ListenPeerURLs {
		if u, err := url.Parse(raw); err == nil && u.Scheme == "https" {
			secure = true
		}
	}
	if secure {
		if peerTLS == nil {
			return errors.New("https peer URLs need --peer-cert-file and --peer-key-file (or --peer-auto-tls)")
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(peerTLS)))
	}
	s.peerGRPC = grpc.NewServer(opts...)
	s.node.Transport().Register(s.peerGRPC)
	for _, raw := range s.cfg.ListenPeerURLs {
		u, err := url.Parse(raw)
		if err != nil {
			return fmt.Errorf("invalid peer URL %q: %w", raw, err)
		}
		l, err := s.cfg.SocketOpts.listen("tcp", u.Host)
		if err != nil {
			return fmt.Errorf("listen on peer URL %s: %w", raw, err)
		}
		s.peerListeners = append(s.peerListeners, l)
		go func() {
			if err := s.peerGRPC.Serve(l); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				s.errc <- fmt.Errorf("peer listener %s: %w", raw, err)
			}
		}()
		s.log.Info("serving peer traffic", "address", l.Addr().String(), "url", raw)
	}
	return nil
}

// peerTLSConfigs builds the peer server's TLS (nil without a peer
// certificate) and the client side used to dial https peers.
func peerTLSConfigs(cfg Config) (server, client *tls.Config, err error) {
	hosts := urlHosts(append(append([]string(nil), cfg.ListenPeerURLs...), cfg.InitialAdvertisePeerURLs...))
	server, err = serverTLSConfig(cfg.PeerTLS, cfg.TLS, cfg.DataDir, "peer", hosts, cfg.Logger)
	if err != nil || server == nil {
		return server, nil, err
	}
	client = &tls.Config{MinVersion: server.MinVersion, RootCAs: server.ClientCAs, Certificates: server.Certificates}
	if cfg.PeerTLS.ClientCertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.PeerTLS.ClientCertFile, cfg.PeerTLS.ClientKeyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("peer client certificate: %w", err)
		}
		client.Certificates = []tls.Certificate{cert}
	}
	if cfg.PeerTLS.AutoTLS || server.ClientCAs == nil {
		// Self-signed peers cannot be verified, as in etcd's auto TLS.
		client.InsecureSkipVerify = true
	}
	if !cfg.PeerTLS.SkipClientSANVerify {
		server = withPeerSANCheck(server)
	}
	return server, client, nil
}

// startupTimeout bounds discovering the cluster when joining.
const startupTimeout = 30 * time.Second

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// StoreKind names the server behind the apiserver: real etcd or sett.
type StoreKind string

const (
	Etcd StoreKind = "etcd"
	Sett StoreKind = "sett"
)

// Store is an etcd or sett process started with etcd's flags, on plain
// HTTP or on mutual TLS (client certificates required).
type Store struct {
	Kind      StoreKind
	ClientURL string
	DataDir   string
	// TLS, when set, is the CA and the apiserver's client certificate.
	TLS    *StoreTLS
	proc   *Proc
	client *clientv3.Client
}

// StoreTLS is what a client needs to reach a store over mutual TLS.
type StoreTLS struct {
	CAFile string
	Client KeyPair
}

// NewStore prepares (without starting) a store of the given kind in dir;
// with pki it serves mutual TLS only.
func NewStore(kind StoreKind, binary, dir string, pki *PKI) (*Store, error) {
	ports, err := FreePorts(2)
	if err != nil {
		return nil, err
	}
	scheme := "http"
	if pki != nil {
		scheme = "https"
	}
	s := &Store{
		Kind:      kind,
		ClientURL: fmt.Sprintf("%s://127.0.0.1:%d", scheme, ports[0]),
		DataDir:   filepath.Join(dir, string(kind)+".data"),
	}
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	args := []string{
		"--name=" + string(kind),
		"--data-dir=" + s.DataDir,
		"--listen-client-urls=" + s.ClientURL,
		"--advertise-client-urls=" + s.ClientURL,
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=" + string(kind) + "=" + peerURL,
		"--log-level=warn",
	}
	if pki != nil {
		server, err := pki.Issue(string(kind)+"-server", string(kind))
		if err != nil {
			return nil, err
		}
		client, err := pki.Issue(string(kind)+"-client", "kube-apiserver-etcd-client")
		if err != nil {
			return nil, err
		}
		s.TLS = &StoreTLS{CAFile: pki.CAFile, Client: client}
		args = append(args, "--cert-file="+server.CertFile, "--key-file="+server.KeyFile,
			"--trusted-ca-file="+pki.CAFile, "--client-cert-auth")
	}
	s.proc = NewProc(dir, string(kind), binary, args...)
	return s, nil
}

// Start runs the store and waits until it answers Status.
func (s *Store) Start(ctx context.Context) error {
	if err := s.proc.Start(); err != nil {
		return err
	}
	return s.waitReady(ctx)
}

// Restart stops the store with SIGTERM and starts it again on the same
// data dir and ports.
func (s *Store) Restart(ctx context.Context) error {
	if err := s.Stop(); err != nil {
		return err
	}
	return s.Start(ctx)
}

// Stop sends SIGTERM and waits for a clean exit.
func (s *Store) Stop() error {
	if s.client != nil {
		s.client.Close()
		s.client = nil
	}
	return s.proc.Stop(30 * time.Second)
}

// Proc is the store's process (its log).
func (s *Store) Proc() *Proc { return s.proc }

// Status asks the store for its version, revision and database size.
func (s *Store) Status(ctx context.Context) (*clientv3.StatusResponse, error) {
	if s.client == nil {
		cfg := clientv3.Config{Endpoints: []string{s.ClientURL}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()}
		if s.TLS != nil {
			tc, err := s.TLS.Config()
			if err != nil {
				return nil, err
			}
			cfg.TLS = tc
		}
		c, err := clientv3.New(cfg)
		if err != nil {
			return nil, err
		}
		s.client = c
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return s.client.Status(ctx, s.ClientURL)
}

func (s *Store) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		if exited, err := s.proc.Exited(); exited {
			return fmt.Errorf("%s exited: %v\n%s", s.Kind, err, s.proc.Tail(40))
		}
		_, err := s.Status(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %v\n%s", s.Kind, err, s.proc.Tail(40))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Config is a client TLS configuration presenting the client certificate.
func (t *StoreTLS) Config() (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(t.Client.CertFile, t.Client.KeyFile)
	if err != nil {
		return nil, err
	}
	ca, err := os.ReadFile(t.CAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	return &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

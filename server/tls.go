package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// TLSInfo is one side's TLS flags (--cert-file, --key-file, … for clients;
// --peer-cert-file, … for peers), as etcd's.
type TLSInfo struct {
	CertFile       string
	KeyFile        string
	TrustedCAFile  string
	ClientCertAuth bool
	CRLFile        string
	// AutoTLS generates a self-signed certificate when no cert/key is given.
	AutoTLS bool
	// ClientCertFile and ClientKeyFile are what the member presents when it
	// is the client (etcd's --client-cert-file / --peer-client-cert-file).
	ClientCertFile string
	ClientKeyFile  string
	// Peer only: skip the SAN check of client certificates, and the CNs or
	// hostnames (comma-separated) one of which every peer certificate must
	// have (see peerIdentityCheck).
	SkipClientSANVerify bool
	AllowedCN           string
	AllowedHostname     string
}

// Empty reports whether no certificate is configured.
func (i TLSInfo) Empty() bool { return i.CertFile == "" && i.KeyFile == "" }

// TLSOptions are the flags shared by both sides.
type TLSOptions struct {
	MinVersion   string   // --tls-min-version: TLS1.2 (default) or TLS1.3
	MaxVersion   string   // --tls-max-version: empty means the newest
	CipherSuites []string // --cipher-suites: names as Go (and etcd) spell them
	// SelfSignedCertValidity is --self-signed-cert-validity in years
	// (default 1).
	SelfSignedCertValidity uint
}

var tlsVersions = map[string]uint16{"TLS1.2": tls.VersionTLS12, "TLS1.3": tls.VersionTLS13}

// serverTLSConfig builds the server side of info: the certificate (or a
// self-signed one under dataDir/fixtures/<side> with AutoTLS), client
// certificate verification, CRL, versions and ciphers. It returns nil when
// neither a certificate nor AutoTLS is configured.
func serverTLSConfig(info TLSInfo, opts TLSOptions, dataDir, side string, hosts []string, log *slog.Logger) (*tls.Config, error) {
	if info.Empty() && info.AutoTLS {
		var err error
		if info, err = selfCert(info, dataDir, side, hosts, opts.SelfSignedCertValidity, log); err != nil {
			return nil, err
		}
	}
	if info.Empty() {
		// As etcd: without a certificate there is no TLS, whatever else is
		// set (an https URL then fails to start).
		return nil, nil
	}
	if info.CertFile == "" || info.KeyFile == "" {
		return nil, fmt.Errorf("%s TLS: both a certificate and a key file are required", side)
	}
	cert, err := tls.LoadX509KeyPair(info.CertFile, info.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("%s TLS: %w", side, err)
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
	}
	if opts.MinVersion != "" {
		v, ok := tlsVersions[opts.MinVersion]
		if !ok {
			return nil, fmt.Errorf("unknown TLS version %q (want TLS1.2 or TLS1.3)", opts.MinVersion)
		}
		cfg.MinVersion = v
	}
	if opts.MaxVersion != "" {
		v, ok := tlsVersions[opts.MaxVersion]
		if !ok {
			return nil, fmt.Errorf("unknown TLS version %q (want TLS1.2 or TLS1.3)", opts.MaxVersion)
		}
		cfg.MaxVersion = v
		if v < cfg.MinVersion {
			return nil, fmt.Errorf("--tls-max-version %s is below --tls-min-version", opts.MaxVersion)
		}
	}
	if len(opts.CipherSuites) > 0 {
		ids, err := cipherSuites(opts.CipherSuites)
		if err != nil {
			return nil, err
		}
		cfg.CipherSuites = ids
	}
	if info.TrustedCAFile != "" {
		pem, err := os.ReadFile(info.TrustedCAFile)
		if err != nil {
			return nil, fmt.Errorf("%s TLS: %w", side, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s TLS: no certificate in %s", side, info.TrustedCAFile)
		}
		cfg.ClientCAs = pool
	}
	if info.ClientCertAuth || info.TrustedCAFile != "" {
		// As in etcd, a trusted CA file alone requires a client
		// certificate it signed; without one, --client-cert-auth has the
		// system's roots verify clients.
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	allowed, err := peerIdentityCheck(info)
	if err != nil {
		return nil, fmt.Errorf("%s TLS: %w", side, err)
	}
	var checks []func(raw [][]byte, chains [][]*x509.Certificate) error
	if allowed != nil {
		checks = append(checks, allowed)
	}
	if info.CRLFile != "" {
		b, err := os.ReadFile(info.CRLFile)
		if err != nil {
			return nil, fmt.Errorf("%s TLS: %w", side, err)
		}
		if p, _ := pem.Decode(b); p != nil {
			b = p.Bytes
		}
		crl, err := x509.ParseRevocationList(b)
		if err != nil {
			return nil, fmt.Errorf("%s TLS: CRL %s: %w", side, info.CRLFile, err)
		}
		revoked := map[string]bool{}
		for _, e := range crl.RevokedCertificateEntries {
			revoked[e.SerialNumber.String()] = true
		}
		checks = append(checks, func(raw [][]byte, _ [][]*x509.Certificate) error {
			for _, der := range raw {
				c, err := x509.ParseCertificate(der)
				if err != nil {
					return err
				}
				if revoked[c.SerialNumber.String()] {
					return errors.New("certificate is revoked by the CRL")
				}
			}
			return nil
		})
	}
	if len(checks) > 0 {
		cfg.VerifyPeerCertificate = func(raw [][]byte, chains [][]*x509.Certificate) error {
			for _, check := range checks {
				if err := check(raw, chains); err != nil {
					return err
				}
			}
			return nil
		}
	}
	return cfg, nil
}

// peerIdentityCheck is the check of --peer-cert-allowed-cn,
// --peer-cert-allowed-hostname and --client-cert-allowed-hostname (each a
// comma-separated list, as in etcd 3.6): a connecting peer or client is
// admitted only if the leaf of one of its verified chains has an allowed
// CN, or is valid for an allowed hostname. Without verified chains (no
// --peer-client-cert-auth / --client-cert-auth) nobody is admitted, as in
// etcd. nil when neither list is set.
func peerIdentityCheck(info TLSInfo) (func(raw [][]byte, chains [][]*x509.Certificate) error, error) {
	cns, hosts := splitList(info.AllowedCN), splitList(info.AllowedHostname)
	if len(cns) > 0 && len(hosts) > 0 {
		return nil, fmt.Errorf("AllowedCNs and AllowedHostnames are mutually exclusive (cns=%q, hostnames=%q)", cns, hosts)
	}
	var admits func(c *x509.Certificate) bool
	switch {
	case len(cns) > 0:
		admits = func(c *x509.Certificate) bool {
			for _, cn := range cns {
				if c.Subject.CommonName == cn {
					return true
				}
			}
			return false
		}
	case len(hosts) > 0:
		admits = func(c *x509.Certificate) bool {
			for _, h := range hosts {
				if c.VerifyHostname(h) == nil {
					return true
				}
			}
			return false
		}
	default:
		return nil, nil
	}
	return func(_ [][]byte, chains [][]*x509.Certificate) error {
		for _, chain := range chains {
			if len(chain) > 0 && admits(chain[0]) {
				return nil
			}
		}
		return errors.New("client certificate authentication failed")
	}, nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func cipherSuites(names []string) ([]uint16, error) {
	known := map[string]uint16{}
	for _, c := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		known[c.Name] = c.ID
	}
	var ids []uint16
	for _, n := range names {
		id, ok := known[strings.TrimSpace(n)]
		if !ok {
			return nil, fmt.Errorf("unknown cipher suite %q", n)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// selfCert returns info with a self-signed certificate for hosts, kept in
// dataDir/fixtures/<side> and reused at restart, as etcd's --auto-tls.
func selfCert(info TLSInfo, dataDir, side string, hosts []string, years uint, log *slog.Logger) (TLSInfo, error) {
	dir := filepath.Join(dataDir, "fixtures", side)
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	info.CertFile, info.KeyFile = certPath, keyPath
	if _, err := os.Stat(certPath); err == nil {
		if _, err := os.Stat(keyPath); err == nil {
			return info, nil
		}
	}
	if years == 0 {
		years = 1
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return info, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return info, err
	}
	now := time.Now()
	tmpl := x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"etcd"}},
		NotBefore:             now,
		NotAfter:              now.Add(time.Duration(years) * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return info, err
	}
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, &tmpl, &key.PublicKey, key)
	if err != nil {
		return info, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return info, err
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return info, err
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return info, err
	}
	log.Info("created self-signed certificate", "side", side, "cert", certPath, "hosts", hosts)
	return info, nil
}

// urlHosts are the hosts of URLs (for a self-signed certificate's names).
func urlHosts(urls []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil {
			continue
		}
		h := u.Hostname()
		if h != "" && !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	return out
}

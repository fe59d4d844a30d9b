package server

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writePEMFile(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// A revoked client certificate is refused; the CRL, versions and cipher
// flags are applied; auto TLS makes and then reuses a certificate.
func TestServerTLSConfig(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	ca, _ := x509.ParseCertificate(caDER)
	writePEMFile(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", caDER)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) tls.Certificate {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, DNSNames: []string{"localhost"}}
		der, _ := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		kb, _ := x509.MarshalECPrivateKey(key)
		writePEMFile(t, filepath.Join(dir, name+".pem"), "CERTIFICATE", der)
		writePEMFile(t, filepath.Join(dir, name+"-key.pem"), "EC PRIVATE KEY", kb)
		c, err := tls.X509KeyPair(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	leaf("server", 2, x509.ExtKeyUsageServerAuth)
	good := leaf("good", 3, x509.ExtKeyUsageClientAuth)
	revoked := leaf("revoked", 4, x509.ExtKeyUsageClientAuth)
	crl, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1),
		RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: big.NewInt(4), RevocationTime: time.Now()}}}, ca, caKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEMFile(t, filepath.Join(dir, "crl.pem"), "X509 CRL", crl)

	info := TLSInfo{CertFile: filepath.Join(dir, "server.pem"), KeyFile: filepath.Join(dir, "server-key.pem"),
		TrustedCAFile: filepath.Join(dir, "ca.pem"), ClientCertAuth: true, CRLFile: filepath.Join(dir, "crl.pem")}
	cfg, err := serverTLSConfig(info, TLSOptions{MinVersion: "TLS1.2", MaxVersion: "TLS1.2",
		CipherSuites: []string{"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"}}, dir, "client", nil, log)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxVersion != tls.VersionTLS12 || len(cfg.CipherSuites) != 1 || cfg.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Fatalf("config %+v", cfg)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	handshake := func(certs []tls.Certificate) error {
		c, s := net.Pipe()
		defer c.Close()
		defer s.Close()
		errc := make(chan error, 1)
		go func() { errc <- tls.Server(s, cfg).Handshake() }()
		cerr := tls.Client(c, &tls.Config{RootCAs: pool, ServerName: "localhost", Certificates: certs}).Handshake()
		if serr := <-errc; serr != nil {
			return serr
		}
		return cerr
	}
	if err := handshake([]tls.Certificate{good}); err != nil {
		t.Errorf("trusted certificate: %v", err)
	}
	if err := handshake([]tls.Certificate{revoked}); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("revoked certificate: %v", err)
	}
	if err := handshake(nil); err == nil {
		t.Error("no certificate accepted")
	}

	for _, o := range []TLSOptions{{MinVersion: "TLS1.1"}, {MinVersion: "TLS1.3", MaxVersion: "TLS1.2"}, {CipherSuites: []string{"nope"}}} {
		if _, err := serverTLSConfig(info, o, dir, "client", nil, log); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	if cfg, err := serverTLSConfig(TLSInfo{ClientCertAuth: true}, TLSOptions{}, dir, "client", nil, log); cfg != nil || err != nil {
		t.Errorf("no certificate: %v %v", cfg, err)
	}

	auto := TLSInfo{AutoTLS: true}
	cfg1, err := serverTLSConfig(auto, TLSOptions{}, dir, "client", []string{"127.0.0.1", "localhost"}, log)
	if err != nil || cfg1 == nil {
		t.Fatal(err)
	}
	cfg2, err := serverTLSConfig(auto, TLSOptions{}, dir, "client", []string{"127.0.0.1"}, log)
	if err != nil || !bytes.Equal(cfg1.Certificates[0].Certificate[0], cfg2.Certificates[0].Certificate[0]) {
		t.Errorf("auto TLS certificate not reused: %v", err)
	}
	x, _ := x509.ParseCertificate(cfg1.Certificates[0].Certificate[0])
	if len(x.IPAddresses) != 1 || len(x.DNSNames) != 1 || x.DNSNames[0] != "localhost" {
		t.Errorf("auto TLS names: %v %v", x.IPAddresses, x.DNSNames)
	}
}

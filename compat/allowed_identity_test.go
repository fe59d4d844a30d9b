package compat

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sett-dev/sett/internal/testproc"
)

// issueNamed is issue with a given CN and DNS names (and 127.0.0.1).
func (ca *testCA) issueNamed(t *testing.T, dir, file, cn string, dns []string, ips ...string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    dns,
	}
	if len(ips) == 0 {
		ips = []string{"127.0.0.1"}
	}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile := filepath.Join(dir, file+".pem"), filepath.Join(dir, file+"-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", kb)
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

// admitted reports whether the server at addr completes a TLS session with
// cert: a refused certificate shows as an alert on the first read (TLS
// 1.3) or a failed handshake; an admitted one as a read that times out or
// returns data.
func admitted(t *testing.T, addr string, roots *x509.CertPool, cert tls.Certificate) bool {
	t.Helper()
	d := &net.Dialer{Timeout: 3 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}})
	if err != nil {
		return false
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(700 * time.Millisecond))
	_, err = conn.Read(make([]byte, 1))
	var ne net.Error
	return err == nil || (errors.As(err, &ne) && ne.Timeout())
}

// TestAllowedCertIdentities: --peer-cert-allowed-cn, --peer-cert-allowed-hostname
// and --client-cert-allowed-hostname admit exactly the certificates etcd
// admits, on the peer and the client port; so does a trusted CA file alone
// (which, in etcd, requires a certificate it signed); a peer certificate
// whose SANs do not name the address it connects from is refused unless
// --peer-skip-client-san-verification.
func TestAllowedCertIdentities(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and sett")
	}
	dir := t.TempDir()
	ca := newCA(t, dir, "ca")
	srvCert, srvKey := ca.issue(t, dir, "server", x509.ExtKeyUsageServerAuth)
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	certs := map[string]tls.Certificate{
		"cn peer-a":          ca.issueNamed(t, dir, "a", "peer-a", []string{"localhost"}),
		"cn peer-b":          ca.issueNamed(t, dir, "b", "peer-b", []string{"localhost"}),
		"host ok.example":    ca.issueNamed(t, dir, "h", "x", []string{"ok.example"}),
		"host other.example": ca.issueNamed(t, dir, "o", "x", []string{"other.example"}),
		"no certificate":     {},
		"san 10.9.9.9 only":  ca.issueNamed(t, dir, "s", "peer-a", nil, "10.9.9.9"),
	}
	cases := []struct {
		name  string
		flags []string
		peer  bool // check the peer port (else the client port)
	}{
		{"peer allowed CNs", []string{"--peer-client-cert-auth", "--peer-cert-allowed-cn=peer-a,peer-c"}, true},
		{"peer allowed hostname", []string{"--peer-client-cert-auth", "--peer-cert-allowed-hostname=ok.example"}, true},
		{"peer allowed CN without client cert auth", []string{"--peer-cert-allowed-cn=peer-a"}, true},
		{"client allowed hostname", []string{"--client-cert-auth", "--client-cert-allowed-hostname=ok.example"}, false},
		{"client trusted CA only", nil, false},
		{"peer SAN checked", []string{"--peer-client-cert-auth"}, true},
		{"peer SAN check skipped", []string{"--peer-client-cert-auth", "--peer-skip-client-san-verification"}, true},
		{"peer trusted CA only", nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := map[string]map[string]bool{}
			for _, kind := range []string{"etcd", "sett"} {
				port, peerPort := testproc.FreePort(t), testproc.FreePort(t)
				curl := fmt.Sprintf("https://127.0.0.1:%d", port)
				purl := fmt.Sprintf("https://127.0.0.1:%d", peerPort)
				args := append([]string{
					"--listen-client-urls=" + curl, "--advertise-client-urls=" + curl,
					"--listen-peer-urls=" + purl, "--initial-advertise-peer-urls=" + purl,
					"--initial-cluster=" + kind + "=" + purl,
					"--cert-file=" + srvCert, "--key-file=" + srvKey, "--trusted-ca-file=" + ca.file,
					"--peer-cert-file=" + srvCert, "--peer-key-file=" + srvKey, "--peer-trusted-ca-file=" + ca.file,
					"--log-level=error",
				}, tc.flags...)
				opts := testproc.Options{Name: kind, ClientPort: port, PeerPort: peerPort, ExtraArgs: args}
				p := startKind(t, kind, opts)
				addr := p.ClientAddr()
				if tc.peer {
					addr = fmt.Sprintf("127.0.0.1:%d", peerPort)
				}
				got[kind] = map[string]bool{}
				for name, c := range certs {
					got[kind][name] = admitted(t, addr, roots, c)
				}
				p.Stop()
			}
			for name := range certs {
				if got["etcd"][name] != got["sett"][name] {
					t.Errorf("%s: etcd admits %v, sett admits %v", name, got["etcd"][name], got["sett"][name])
				}
			}
			t.Logf("admitted: %v", got["sett"])
		})
	}

	// Both lists at once: etcd refuses to start, and so does sett.
	for _, kind := range []string{"etcd", "sett"} {
		bin := testproc.EnsureBinary(t, "etcd")
		if kind == "sett" {
			bin = testproc.BuildSett(t)
		}
		cmd := exec.Command(bin, "--data-dir="+filepath.Join(dir, kind+"-both"), "--listen-client-urls=http://127.0.0.1:0",
			"--advertise-client-urls=http://127.0.0.1:2379", "--listen-peer-urls=https://127.0.0.1:0",
			"--peer-cert-file="+srvCert, "--peer-key-file="+srvKey,
			"--peer-cert-allowed-cn=a", "--peer-cert-allowed-hostname=b")
		cmd.Env = append(os.Environ(), "ETCD_UNSUPPORTED_ARCH="+os.Getenv("ETCD_UNSUPPORTED_ARCH"))
		done := make(chan error, 1)
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(out.String(), "mutually exclusive") {
				t.Errorf("%s with both allowed CN and hostname: %v\n%s", kind, err, out.String())
			}
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			t.Errorf("%s with both allowed CN and hostname kept running", kind)
		}
	}
}

package compat

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/sett-dev/sett/internal/testproc"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string
}

var serial int64 = 1

func newCA(t *testing.T, dir, name string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{cert: cert, key: key, file: filepath.Join(dir, name+".pem")}
	writePEM(t, ca.file, "CERTIFICATE", der)
	return ca
}

// issue writes a certificate signed by ca for 127.0.0.1 and returns the
// cert and key file names.
func (ca *testCA) issue(t *testing.T, dir, name string, usage ...x509.ExtKeyUsage) (string, string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: usage,
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", kb)
	return certFile, keyFile
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestTLS serves clients over TLS with client certificates required:
// gRPC (etcdctl) and HTTP (HTTP/1.1 and HTTP/2) on the same port with a
// certificate from the trusted CA; nothing without one or with one from
// another CA; /metrics on a plain metrics listener.
func TestTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts sett")
	}
	dir := t.TempDir()
	ca := newCA(t, dir, "ca")
	other := newCA(t, dir, "other-ca")
	srvCert, srvKey := ca.issue(t, dir, "server", x509.ExtKeyUsageServerAuth)
	cliCert, cliKey := ca.issue(t, dir, "client", x509.ExtKeyUsageClientAuth)
	badCert, badKey := other.issue(t, dir, "stranger", x509.ExtKeyUsageClientAuth)

	port, mport := testproc.FreePort(t), testproc.FreePort(t)
	url := fmt.Sprintf("https://127.0.0.1:%d", port)
	murl := fmt.Sprintf("http://127.0.0.1:%d", mport)
	proc := testproc.StartSett(t, testproc.Options{ClientPort: port, ExtraArgs: []string{
		"--listen-client-urls=" + url, "--advertise-client-urls=" + url, "--listen-metrics-urls=" + murl,
		"--cert-file=" + srvCert, "--key-file=" + srvKey, "--trusted-ca-file=" + ca.file, "--client-cert-auth",
		"--log-level=warn",
	}})

	ctl := func(extra ...string) (string, error) {
		return testproc.Etcdctl(t, url, append(extra, "--dial-timeout=1s", "--command-timeout=1s")...)
	}
	good := []string{"--cacert=" + ca.file, "--cert=" + cliCert, "--key=" + cliKey}
	if out, err := ctl(append(good, "put", "k", "v")...); err != nil || strings.TrimSpace(out) != "OK" {
		t.Fatalf("put with a trusted client certificate: %q %v", out, err)
	}
	if out, err := ctl(append(good, "get", "k", "--print-value-only")...); err != nil || strings.TrimSpace(out) != "v" {
		t.Fatalf("get: %q %v", out, err)
	}
	if out, err := ctl(append(good, "endpoint", "health")...); err != nil || !strings.Contains(out, "is healthy") {
		t.Fatalf("endpoint health: %q %v", out, err)
	}
	if _, err := ctl("--cacert="+ca.file, "get", "k"); err == nil {
		t.Error("served a client without a certificate")
	}
	// A certificate from another CA: the handshake fails (with TLS 1.3 the
	// client learns it on its first read).
	bad, err := tls.LoadX509KeyPair(badCert, badKey)
	if err != nil {
		t.Fatal(err)
	}
	rootPool := x509.NewCertPool()
	rootPool.AddCert(ca.cert)
	conn, err := tls.Dial("tcp", proc.ClientAddr(), &tls.Config{RootCAs: rootPool, Certificates: []tls.Certificate{bad}, NextProtos: []string{"h2"}})
	if err == nil {
		conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a certificate another CA signed: %v", err)
	}

	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	pair, err := tls.LoadX509KeyPair(cliCert, cliKey)
	if err != nil {
		t.Fatal(err)
	}
	badPair := bad
	for _, c := range []struct {
		name   string
		certs  []tls.Certificate
		h2     bool
		wantOK bool
	}{
		{"HTTP/1.1 with certificate", []tls.Certificate{pair}, false, true},
		{"HTTP/2 with certificate", []tls.Certificate{pair}, true, true},
		{"HTTP/1.1 without certificate", nil, false, false},
		{"HTTP/2 with a foreign certificate", []tls.Certificate{badPair}, true, false},
	} {
		cfg := &tls.Config{RootCAs: pool, Certificates: c.certs}
		var tr http.RoundTripper = &http.Transport{TLSClientConfig: cfg}
		if c.h2 {
			tr = &http2.Transport{TLSClientConfig: cfg}
		}
		cli := &http.Client{Transport: tr, Timeout: 5 * time.Second}
		resp, err := cli.Get(url + "/health")
		if !c.wantOK {
			if err == nil {
				resp.Body.Close()
				t.Errorf("%s: served (%s)", c.name, resp.Status)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != `{"health":"true","reason":""}` || resp.ProtoMajor != map[bool]int{false: 1, true: 2}[c.h2] {
			t.Errorf("%s: %s %s %q", c.name, resp.Proto, resp.Status, body)
		}
	}
	// Plain HTTP on the TLS port is not served.
	if resp, err := (&http.Client{Timeout: 3 * time.Second}).Get(strings.Replace(url, "https", "http", 1) + "/health"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("plain HTTP served on the TLS port")
		}
	}
	// The metrics listener is plain HTTP, as configured.
	resp, err := http.Get(murl + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "etcd_server_has_leader 1") {
		t.Errorf("metrics listener: %s", resp.Status)
	}
	if resp, err := http.Get(murl + "/health"); err != nil || resp.StatusCode != 200 {
		t.Errorf("metrics listener /health: %v %v", resp, err)
	}
}

// TestAutoTLS serves over a self-signed certificate kept in the data
// directory.
func TestAutoTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts sett")
	}
	port := testproc.FreePort(t)
	url := fmt.Sprintf("https://127.0.0.1:%d", port)
	proc := testproc.StartSett(t, testproc.Options{ClientPort: port, ExtraArgs: []string{
		"--listen-client-urls=" + url, "--advertise-client-urls=" + url, "--auto-tls", "--log-level=warn",
	}})
	if out, err := testproc.Etcdctl(t, url, "--insecure-skip-tls-verify", "--insecure-transport=false", "put", "k", "v"); err != nil || strings.TrimSpace(out) != "OK" {
		t.Fatalf("put: %q %v", out, err)
	}
	if _, err := os.Stat(filepath.Join(proc.DataDir, "fixtures", "client", "cert.pem")); err != nil {
		t.Errorf("self-signed certificate not kept: %v", err)
	}
	cli := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}}
	resp, err := cli.Get(url + "/version")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != `{"etcdserver":"3.6.16","etcdcluster":"3.6.0","storage":"3.6.0"}` {
		t.Errorf("/version over auto TLS (%s): %q", resp.Proto, body)
	}
}

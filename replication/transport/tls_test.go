package transport

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// testCA issues certificates for 127.0.0.1.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "sett test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue returns a certificate valid for both serving and dialing 127.0.0.1.
func (ca *testCA) issue(t *testing.T, serial int64) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "member"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// tlsOpts returns mutual-TLS options for a member.
func (ca *testCA) tlsOpts(t *testing.T, serial int64) memberOpts {
	cert := ca.issue(t, serial)
	return memberOpts{
		serverTLS: &tls.Config{
			Certificates: []tls.Certificate{cert},
			ClientCAs:    ca.pool,
			ClientAuth:   tls.RequireAndVerifyClientCert,
			MinVersion:   tls.VersionTLS12,
		},
		clientTLS: &tls.Config{
			Certificates: []tls.Certificate{cert},
			RootCAs:      ca.pool,
			MinVersion:   tls.VersionTLS12,
		},
		snapSize: 2<<20 + 7,
	}
}

func TestTLS(t *testing.T) {
	ca := newTestCA(t)
	a, b := newMember(t, 1, ca.tlsOpts(t, 10)), newMember(t, 2, ca.tlsOpts(t, 11))
	if a.url()[:8] != "https://" {
		t.Fatalf("member URL %s is not https", a.url())
	}
	b.tr.Handle("echo", func(ctx context.Context, req []byte) ([]byte, error) { return req, nil })
	connectAll(a, b)
	waitActive(t, a, b)
	waitActive(t, b, a)

	a.tr.Send([]raftpb.Message{heartbeat(a.id, b.id, 1), app(a.id, b.id, 1, []byte("over tls"))})
	b.tr.Send([]raftpb.Message{heartbeat(b.id, a.id, 1)})
	waitFor(t, "messages over TLS", func() bool { return len(b.raft.from(a.id)) == 2 && len(a.raft.from(b.id)) == 1 })

	if got, err := a.tr.Call(context.Background(), b.id, "echo", []byte("x")); err != nil || string(got) != "x" {
		t.Fatalf("Call over TLS: %q, %v", got, err)
	}

	a.tr.Send([]raftpb.Message{snapMsg(a.id, b.id, 3)})
	waitFor(t, "snapshot over TLS", func() bool { return len(a.raft.snapshotReports(b.id)) == 1 })
	if got := a.raft.snapshotReports(b.id); got[0] != raft.SnapshotFinish {
		t.Fatalf("ReportSnapshot = %v", got)
	}
}

func TestTLSUntrustedPeerRefused(t *testing.T) {
	ca, other := newTestCA(t), newTestCA(t)
	a := newMember(t, 1, other.tlsOpts(t, 10)) // trusts another CA
	b := newMember(t, 2, ca.tlsOpts(t, 11))
	a.tr.AddPeer(b.id, []string{b.url()})
	waitFor(t, "ReportUnreachable for a peer with an untrusted certificate", func() bool {
		a.tr.Send([]raftpb.Message{heartbeat(a.id, b.id, 1)})
		time.Sleep(10 * time.Millisecond)
		return a.raft.unreachableCount(b.id) > 0
	})
	if !a.tr.ActiveSince(b.id).IsZero() || len(b.raft.from(a.id)) != 0 {
		t.Fatal("traffic passed a failed TLS handshake")
	}
	// Plain http to a TLS listener fails the same way.
	c := newMember(t, 3, memberOpts{})
	c.tr.AddPeer(b.id, []string{"http://" + b.addr})
	waitFor(t, "ReportUnreachable for http to an https peer", func() bool {
		c.tr.Send([]raftpb.Message{heartbeat(c.id, b.id, 1)})
		time.Sleep(10 * time.Millisecond)
		return c.raft.unreachableCount(b.id) > 0
	})
}

package server

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
)

// testBounds are short bounds, so that every case below ends quickly.
var testBounds = connBounds{Handshake: time.Second, FirstBytes: time.Second, Header: time.Second, Body: time.Second}

// boundSlack is how long past its bound a connection may take to end.
const boundSlack = 2 * time.Second

func startBoundsServer(t *testing.T, mutate func(*Config)) *Server {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.ListenPeerURLs = []string{"http://127.0.0.1:0"}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.ClientTLS.AutoTLS = true
	cfg.bounds = testBounds
	mutate(&cfg)
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// readToEnd reads c until the server closes it (or fails it) and returns
// what was read and the error that ended it. A read that ends because the
// test's own, longer, deadline passed means the server let it hang.
func readToEnd(t *testing.T, c net.Conn, start time.Time, bound time.Duration) (string, error) {
	t.Helper()
	c.SetReadDeadline(start.Add(bound + boundSlack + 3*time.Second))
	b, err := io.ReadAll(c)
	if err == nil {
		err = io.EOF
	}
	if isTimeout(err) {
		t.Fatalf("the connection was still open %v after it started (bound %v): read %q", time.Since(start), bound, b)
	}
	if took := time.Since(start); took > bound+boundSlack {
		t.Errorf("the connection took %v to end, bound %v", took, bound)
	}
	return string(b), err
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Every client of the wrong protocol, or of none, gets an error or a
// close within its bound, on plain and TLS client URLs, on gRPC-only
// URLs, and with client certificates required; an idle gRPC client over
// TLS keeps its connection.
func TestConnectionBounds(t *testing.T) {
	s := startBoundsServer(t, func(c *Config) {
		c.ListenClientURLs = []string{"http://127.0.0.1:0", "https://127.0.0.1:0"}
	})
	plain, secure := s.Addrs()[0].String(), s.Addrs()[1].String()
	only := startBoundsServer(t, func(c *Config) {
		c.ListenClientURLs = []string{"http://127.0.0.1:0", "https://127.0.0.1:0"}
		c.ListenClientHTTPURLs = []string{"http://127.0.0.1:0"}
		c.ClientTLS.ClientCertAuth = true
	})
	grpcOnly, mutual := only.Addrs()[0].String(), only.Addrs()[1].String()
	insecureTLS := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}}

	cases := []struct {
		name  string
		addr  string
		bound time.Duration
		// send writes the client's part; check judges what the server sent.
		send  func(t *testing.T, c net.Conn) net.Conn
		check func(t *testing.T, got string, err error)
	}{
		{name: "plain: silent client", addr: plain, bound: testBounds.FirstBytes},
		{name: "plain: part of the HTTP/2 preface", addr: plain, bound: testBounds.FirstBytes, send: write("PRI * HTTP/2.0\r\n")},
		{name: "plain: HTTP/1 header never finished", addr: plain, bound: testBounds.Header, send: write("GET /health HTTP/1.1\r\nHost: x\r\n")},
		{name: "plain: gateway body shorter than announced", addr: plain, bound: testBounds.Body,
			send:  write("POST /v3/kv/range HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"key\":"),
			check: wantPrefix("HTTP/1.1 408 Request Timeout")},
		{name: "plain: HTTP/1 to a gRPC method", addr: plain, bound: testBounds.FirstBytes,
			send:  write("POST /etcdserverpb.KV/Range HTTP/1.1\r\nHost: x\r\nContent-Type: application/grpc\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
			check: wantPrefix("HTTP/1.1 404 Not Found")},
		{name: "plain: TLS client", addr: plain, bound: testBounds.FirstBytes, send: tlsClient(insecureTLS, "first record does not look like a TLS handshake")},
		{name: "TLS: silent client", addr: secure, bound: testBounds.Handshake},
		{name: "TLS: ClientHello never finished", addr: secure, bound: testBounds.Handshake, send: write("\x16\x03\x01\x01\x00\x01\x00\x00\xfc\x03\x03")},
		{name: "TLS: plain HTTP/1 client", addr: secure, bound: testBounds.Handshake, send: write("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"),
			check: wantPrefix("HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.")},
		{name: "TLS: plain gRPC client", addr: secure, bound: testBounds.Handshake, send: write(http2.ClientPreface)},
		{name: "TLS: handshake, then nothing", addr: secure, bound: testBounds.Handshake + testBounds.FirstBytes, send: tlsClient(insecureTLS, "")},
		{name: "gRPC-only URL: HTTP/1 client", addr: grpcOnly, bound: testBounds.FirstBytes, send: write("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"),
			check: wantPrefix("")},
		{name: "client certificates required: none sent", addr: mutual, bound: testBounds.Handshake, send: tlsClient(insecureTLS, "certificate required")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			conn := dial(t, c.addr)
			if c.send != nil {
				conn = c.send(t, conn)
				if conn == nil {
					return // the client saw its error
				}
			}
			got, err := readToEnd(t, conn, start, c.bound)
			if c.check != nil {
				c.check(t, got, err)
			}
		})
	}

	t.Run("TLS: idle gRPC client keeps its connection", func(t *testing.T) {
		var dials atomic.Int32
		conn, err := grpc.NewClient("passthrough:///"+secure,
			grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{InsecureSkipVerify: true})),
			grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
				dials.Add(1)
				return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			}))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn.Connect()
		for st := conn.GetState(); st != connectivity.Ready; st = conn.GetState() {
			if !conn.WaitForStateChange(ctx, st) {
				t.Fatal("not connected")
			}
		}
		time.Sleep(testBounds.FirstBytes + 500*time.Millisecond)
		if _, err := pb.NewKVClient(conn).Range(ctx, &pb.RangeRequest{Key: []byte("k")}); err != nil {
			t.Fatal(err)
		}
		if n := dials.Load(); n != 1 {
			t.Errorf("%d connections made, want 1 (the idle one was closed)", n)
		}
	})

	t.Run("TLS: HTTP/2 and HTTP/1 clients served", func(t *testing.T) {
		for _, tr := range []http.RoundTripper{
			&http2.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
			&http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
		} {
			cli := &http.Client{Transport: tr, Timeout: 5 * time.Second}
			resp, err := cli.Post("https://"+secure+"/v3/kv/range", "application/json", strings.NewReader(`{"key":"aw=="}`))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(body), `"revision":"1"`) {
				t.Errorf("%s: %s %s", resp.Proto, resp.Status, body)
			}
		}
	})
}

func write(s string) func(t *testing.T, c net.Conn) net.Conn {
	return func(t *testing.T, c net.Conn) net.Conn {
		if _, err := io.WriteString(c, s); err != nil {
			t.Fatal(err)
		}
		return c
	}
}

// tlsClient runs a TLS handshake and a first read; with wantErr, the
// handshake or the read must fail with it (within the bound). Without,
// the handshake must succeed and the connection is returned for reading.
func tlsClient(cfg *tls.Config, wantErr string) func(t *testing.T, c net.Conn) net.Conn {
	return func(t *testing.T, c net.Conn) net.Conn {
		start := time.Now()
		tc := tls.Client(c, cfg)
		tc.SetDeadline(start.Add(testBounds.Handshake + boundSlack + 3*time.Second))
		err := tc.Handshake()
		if wantErr == "" {
			if err != nil {
				t.Fatal(err)
			}
			return tc
		}
		if err == nil {
			_, err = tc.Read(make([]byte, 1))
		}
		if err == nil || isTimeout(err) || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("got %v, want an error with %q", err, wantErr)
		}
		if took := time.Since(start); took > testBounds.Handshake+boundSlack {
			t.Errorf("the error took %v", took)
		}
		return nil
	}
}

func wantPrefix(p string) func(t *testing.T, got string, err error) {
	return func(t *testing.T, got string, err error) {
		if !strings.HasPrefix(got, p) {
			t.Errorf("server sent %q (then %v), want it to start with %q", got, err, p)
		}
		if p == "" && got != "" {
			t.Errorf("server sent %q, want a close", got)
		}
		if err != nil && !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset") {
			t.Errorf("ended by %v", err)
		}
	}
}

package server

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"time"
)

// connBounds bound every step of a client connection before, and every
// request after, it reaches gRPC or HTTP, so that a client speaking the
// wrong protocol (or nothing) gets an error or a close, never a wait
// without end.
type connBounds struct {
	// Handshake bounds a TLS handshake.
	Handshake time.Duration
	// FirstBytes bounds, after the accept or the TLS handshake, how long a
	// connection may take to show what it speaks (the HTTP/2 preface or
	// another first byte). Over TLS, where HTTP/2 may be gRPC or HTTP,
	// a connection whose first request does not arrive within it goes to
	// gRPC (an idle gRPC client sends none until its first call).
	FirstBytes time.Duration
	// Header bounds an HTTP/1 request's header; Body, a request body on the
	// gateway's unary paths.
	Header, Body time.Duration
}

// defaultConnBounds are the bounds of a member: a second for a peer on
// the same network to finish TLS and send its first bytes; longer for
// request headers and bodies, which may be large.
var defaultConnBounds = connBounds{Handshake: time.Second, FirstBytes: time.Second, Header: 30 * time.Second, Body: 30 * time.Second}

func (b connBounds) orDefault() connBounds {
	d := defaultConnBounds
	if b.Handshake > 0 {
		d.Handshake = b.Handshake
	}
	if b.FirstBytes > 0 {
		d.FirstBytes = b.FirstBytes
	}
	if b.Header > 0 {
		d.Header = b.Header
	}
	if b.Body > 0 {
		d.Body = b.Body
	}
	return d
}

// tlsRecordHandshake is the first byte of every TLS connection (a
// handshake record); no HTTP request or HTTP/2 preface starts with it.
const tlsRecordHandshake = 0x16

// handshake runs the server side of TLS on c within the bound. A client
// that sent plain HTTP/1 gets the answer Go's HTTPS servers give it.
func handshake(c net.Conn, cfg *tls.Config, bound time.Duration) (*tls.Conn, error) {
	c.SetDeadline(time.Now().Add(bound))
	tc := tls.Server(c, cfg)
	err := tc.Handshake()
	if err == nil {
		return tc, nil
	}
	var rh tls.RecordHeaderError
	if errors.As(err, &rh) && rh.Conn != nil && looksLikeHTTP1(rh.RecordHeader[:]) {
		io.WriteString(rh.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
	}
	return nil, err
}

// refusePlainTLS answers a TLS ClientHello on a plain port with an HTTP
// error, which a TLS client reports as a first record that is not a TLS
// handshake, at once rather than after waiting for a ServerHello.
func refusePlainTLS(c net.Conn) {
	io.WriteString(c, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent a TLS handshake to a plain HTTP server.\n")
}

func looksLikeHTTP1(hdr []byte) bool {
	for _, m := range []string{"GET ", "HEAD ", "POST ", "PUT ", "DELETE ", "OPTIONS ", "PATCH ", "CONNECT ", "TRACE "} {
		n := min(len(m), len(hdr))
		if string(hdr[:n]) == m[:n] {
			return true
		}
	}
	return false
}

// firstByteIsTLS reports whether the connection opens with a TLS record.
func firstByteIsTLS(br *bufio.Reader) (bool, error) {
	b, err := br.Peek(1)
	if err != nil {
		return false, err
	}
	return b[0] == tlsRecordHandshake, nil
}

// isTimeout reports whether err is a deadline expiring.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// streamingPaths are the gateway's client-streaming methods, whose bodies
// are streams of requests that may stay open as long as the call.
var streamingPaths = map[string]bool{"/v3/watch": true, "/v3/lease/keepalive": true}

// boundedBody reads the whole body of a unary gateway request within
// the bound before h sees it: a client that announces more than it sends
// gets 408 Request Timeout instead of a request waiting without end.
func boundedBody(h http.Handler, bound time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if streamingPaths[r.URL.Path] || r.Body == nil || r.Body == http.NoBody {
			h.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		rc.SetReadDeadline(time.Now().Add(bound))
		body, err := io.ReadAll(r.Body)
		if err != nil {
			// The connection's state is unknown past a failed body: it
			// ends with this answer (which its deadline must not delay,
			// as the server would otherwise read what is left of the
			// body first).
			w.Header().Set("Connection", "close")
			if isTimeout(err) {
				http.Error(w, "request body not received in time", http.StatusRequestTimeout)
				return
			}
			http.Error(w, "reading the request body: "+err.Error(), http.StatusBadRequest)
			return
		}
		rc.SetReadDeadline(time.Time{})
		r.Body = io.NopCloser(bytes.NewReader(body))
		h.ServeHTTP(w, r)
	})
}

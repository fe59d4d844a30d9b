package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// publicPrefix marks the methods anyone may call without knowing the
// cluster's or the member's ID (a member about to join asks for them).
const publicPrefix = "public/"

func isPublic(method string) bool { return strings.HasPrefix(method, publicPrefix) }

// HandlePublic registers the server side of a method callable with
// Discover: it must reveal nothing a joining member may not know.
func (t *Transport) HandlePublic(method string, fn func(ctx context.Context, req []byte) ([]byte, error)) {
	t.Handle(publicPrefix+method, fn)
}

// Discover calls a public method on the member at one of urls, before this
// member has an ID or knows the cluster's.
func Discover(ctx context.Context, clientTLS *tls.Config, urls []string, method string, req []byte) ([]byte, error) {
	t := New(Config{ID: 0, ClusterID: 0, ClientTLS: clientTLS})
	defer t.Stop()
	var errs []error
	for _, u := range urls {
		conn, err := t.dial(u)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		h := header{kind: kindCall}
		var reply frame
		err = conn.Invoke(ctx, methodCall, &frame{b: encodeCall(h, publicPrefix+method, req)}, &reply, grpc.WaitForReady(true))
		conn.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", u, err))
			continue
		}
		rh, body, err := parseHeader(reply.b)
		if err != nil || rh.kind != kindReply {
			errs = append(errs, status.Errorf(codes.Internal, "malformed reply from %s", u))
			continue
		}
		return body, nil
	}
	return nil, errors.Join(errs...)
}

// PublicMethod is the name under which Call reaches a method registered
// with HandlePublic.
func PublicMethod(method string) string { return publicPrefix + method }

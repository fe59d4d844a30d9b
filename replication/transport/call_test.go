package transport

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestCallAndHandle(t *testing.T) {
	a, b := newMember(t, 1, memberOpts{}), newMember(t, 2, memberOpts{})
	b.tr.Handle("echo", func(ctx context.Context, req []byte) ([]byte, error) {
		return append([]byte("echo:"), req...), nil
	})
	b.tr.Handle("plain-error", func(context.Context, []byte) ([]byte, error) { return nil, errFake })
	b.tr.Handle("status-error", func(context.Context, []byte) ([]byte, error) {
		return nil, status.Error(codes.NotFound, "lease not found")
	})
	b.tr.Handle("empty", func(context.Context, []byte) ([]byte, error) { return nil, nil })
	connectAll(a, b)
	big := bytes.Repeat([]byte("b"), 5<<20) // beyond gRPC's default 4 MiB limit

	cases := []struct {
		name     string
		to       uint64
		method   string
		req      []byte
		want     []byte
		wantCode codes.Code
		wantMsg  string
	}{
		{name: "echo", to: 2, method: "echo", req: []byte("hi"), want: []byte("echo:hi")},
		{name: "large", to: 2, method: "echo", req: big, want: append([]byte("echo:"), big...)},
		{name: "empty reply", to: 2, method: "empty", want: []byte{}},
		{name: "unknown method", to: 2, method: "nope", wantCode: codes.Unimplemented},
		{name: "plain error", to: 2, method: "plain-error", wantCode: codes.Unknown, wantMsg: errFake.Error()},
		{name: "status error unchanged", to: 2, method: "status-error", wantCode: codes.NotFound, wantMsg: "lease not found"},
		{name: "unknown peer", to: 9, method: "echo", wantCode: codes.Unavailable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := a.tr.Call(context.Background(), tc.to, tc.method, tc.req)
			if tc.wantCode != codes.OK {
				st, _ := status.FromError(err)
				if st.Code() != tc.wantCode || (tc.wantMsg != "" && st.Message() != tc.wantMsg) {
					t.Fatalf("error %v, want %v %q", err, tc.wantCode, tc.wantMsg)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("got %d bytes, %v; want %d bytes", len(got), err, len(tc.want))
			}
		})
	}
}

func TestCallHonoursContext(t *testing.T) {
	a, b := newMember(t, 1, memberOpts{}), newMember(t, 2, memberOpts{})
	handlerDone := make(chan error, 1)
	b.tr.Handle("wait", func(ctx context.Context, _ []byte) ([]byte, error) {
		<-ctx.Done()
		handlerDone <- ctx.Err()
		return nil, ctx.Err()
	})
	connectAll(a, b)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := a.tr.Call(ctx, b.id, "wait", nil)
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("Call error %v, want DeadlineExceeded", err)
	}
	select {
	case <-handlerDone:
	case <-time.After(5 * time.Second):
		t.Fatal("handler context not cancelled with the call")
	}
}

func TestDiscoverCallsPublicMethods(t *testing.T) {
	b := newMember(t, 2, memberOpts{})
	b.tr.HandlePublic("cluster", func(ctx context.Context, req []byte) ([]byte, error) {
		return append([]byte("members of "), req...), nil
	})
	b.tr.Handle("private", func(ctx context.Context, req []byte) ([]byte, error) { return req, nil })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := Discover(ctx, nil, []string{b.url()}, "cluster", []byte("c1"))
	if err != nil || string(got) != "members of c1" {
		t.Fatalf("Discover = %q, %v", got, err)
	}
	// Without the cluster and member IDs only public methods answer.
	if _, err := Discover(ctx, nil, []string{b.url()}, "private", nil); err == nil || !strings.Contains(err.Error(), "code = Unimplemented") {
		t.Fatalf("Discover of a non-public method: %v, want Unimplemented", err)
	}
	a := newMember(t, 1, memberOpts{cluster: 0xc1})
	a.tr.AddPeer(b.id, []string{b.url()})
	if _, err := a.tr.Call(ctx, b.id, "private", nil); err != nil {
		t.Fatalf("member Call of a private method: %v", err)
	}
}

package server

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	gw "go.etcd.io/etcd/api/v3/etcdserverpb/gw"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/encoding/protojson"
)

// gatewayBufferBytes is the in-memory connection's buffer between the
// gateway and the gRPC server, per direction.
const gatewayBufferBytes = 1 << 20

// gateway is etcd's gRPC gateway: JSON over HTTP under /v3/, with bytes
// fields in base64, translated by etcd's generated handlers into calls of
// the member's own gRPC server. The calls go over an in-memory connection
// served by that server, so they pass the same interceptors (readiness,
// metrics, quota, and authentication from the forwarded Authorization
// header) as any gRPC client's.
type gateway struct {
	mux    *runtime.ServeMux
	lis    *bufconn.Listener
	conn   *grpc.ClientConn
	cancel context.CancelFunc
}

// newGateway registers the KV, Watch, Lease, Cluster, Maintenance and Auth
// gateways on a client of the in-memory listener, which serve must then
// serve.
func newGateway(overTLS bool) (*gateway, error) {
	gwy := &gateway{lis: bufconn.Listen(gatewayBufferBytes)}
	var extra []grpc.DialOption
	if overTLS {
		extra = append(extra, grpc.WithChainUnaryInterceptor(tlsHeadersUnary), grpc.WithChainStreamInterceptor(tlsHeadersStream))
	}
	conn, err := grpc.NewClient("passthrough:///sett-gateway", append(extra,
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return gwy.lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// The server, not the gateway, bounds request sizes (as etcd's
		// gateway, which dials with no send limit).
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32), grpc.MaxCallSendMsgSize(math.MaxInt32)),
	)...)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	gwy.conn = conn
	// etcd's marshaling: proto field names, unset fields left out, unknown
	// request fields ignored.
	gwy.mux = runtime.NewServeMux(runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.HTTPBodyMarshaler{
		Marshaler: &runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: false},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
		},
	}))
	ctx, cancel := context.WithCancel(context.Background())
	gwy.cancel = cancel
	for _, register := range []func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error{
		gw.RegisterKVHandler, gw.RegisterWatchHandler, gw.RegisterLeaseHandler,
		gw.RegisterClusterHandler, gw.RegisterMaintenanceHandler, gw.RegisterAuthHandler,
	} {
		if err := register(ctx, gwy.mux, conn); err != nil {
			gwy.close()
			return nil, fmt.Errorf("gateway: %w", err)
		}
	}
	return gwy, nil
}

// startGateway makes the client URLs (and --listen-client-http-urls)
// answer /v3/ with the gateway to g, as etcd with --enable-grpc-gateway.
// Call it before the client URLs are opened.
func (f *frontend) startGateway(g *grpc.Server, errc chan<- error) error {
	gwy, err := newGateway(gatewayOverTLS(f.cfg.ListenClientURLs))
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.gateway = gwy
	f.mu.Unlock()
	f.http.v3 = boundedBody(gwy, f.cfg.bounds.orDefault().Body)
	go func() {
		if err := gwy.serve(g); err != nil && !errors.Is(err, grpc.ErrServerStopped) && !f.isClosed() {
			errc <- fmt.Errorf("gateway: %w", err)
		}
	}()
	return nil
}

// serve runs g on the in-memory listener until close.
func (gwy *gateway) serve(g *grpc.Server) error { return g.Serve(gwy.lis) }

// ServeHTTP answers /v3/… requests.
func (gwy *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) { gwy.mux.ServeHTTP(w, r) }

func (gwy *gateway) close() {
	gwy.cancel()
	gwy.conn.Close()
	gwy.lis.Close()
}

// gatewayOverTLS reports whether etcd's gateway would reach its gRPC
// server over TLS: etcd dials one of its client URLs (the first of
// sett's; etcd picks any when schemes are mixed).
func gatewayOverTLS(clientURLs []string) bool {
	return len(clientURLs) > 0 && (strings.HasPrefix(clientURLs[0], "https://") || strings.HasPrefix(clientURLs[0], "unixs://"))
}

// tlsGatewayHeaders is what etcd's gRPC server, serving its TLS client
// URLs through its HTTP server, adds to every response's header
// metadata (its CORS headers and the HTTP trailer announcement), which
// the gateway then forwards as Grpc-Metadata-* headers. That server
// also sends a header, with the content type, before an error, where the
// native transport sends trailers alone.
var tlsGatewayHeaders = metadata.Pairs(
	"access-control-allow-headers", "accept, content-type, authorization",
	"access-control-allow-methods", "POST, GET, OPTIONS, PUT, DELETE",
	"access-control-allow-origin", "*",
	"trailer", "Grpc-Status, Grpc-Message, Grpc-Status-Details-Bin",
)

func tlsHeadersUnary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	for _, o := range opts {
		if h, ok := o.(grpc.HeaderCallOption); ok && h.HeaderAddr != nil {
			*h.HeaderAddr = withTLSHeaders(*h.HeaderAddr)
		}
	}
	return err
}

func tlsHeadersStream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	cs, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, err
	}
	return tlsHeadersClientStream{cs}, nil
}

type tlsHeadersClientStream struct{ grpc.ClientStream }

func (s tlsHeadersClientStream) Header() (metadata.MD, error) {
	md, err := s.ClientStream.Header()
	return withTLSHeaders(md), err
}

func withTLSHeaders(md metadata.MD) metadata.MD {
	out := metadata.Join(md, tlsGatewayHeaders)
	if len(md.Get("content-type")) == 0 {
		out.Set("content-type", "application/grpc")
	}
	return out
}

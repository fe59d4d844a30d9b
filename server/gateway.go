package server

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	gw "go.etcd.io/etcd/api/v3/etcdserverpb/gw"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
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
func newGateway() (*gateway, error) {
	gwy := &gateway{lis: bufconn.Listen(gatewayBufferBytes)}
	conn, err := grpc.NewClient("passthrough:///sett-gateway",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return gwy.lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// The server, not the gateway, bounds request sizes (as etcd's
		// gateway, which dials with no send limit).
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32), grpc.MaxCallSendMsgSize(math.MaxInt32)),
	)
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
	gwy, err := newGateway()
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

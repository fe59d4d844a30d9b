package metrics

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// grpcMetrics are go-grpc-prometheus' server metrics, which etcd exports:
// grpc_server_started_total, grpc_server_handled_total,
// grpc_server_msg_received_total and grpc_server_msg_sent_total, and with
// --metrics=extensive grpc_server_handling_seconds.
type grpcMetrics struct {
	started  *prometheus.CounterVec
	handled  *prometheus.CounterVec
	received *prometheus.CounterVec
	sent     *prometheus.CounterVec
	handling *prometheus.HistogramVec // nil unless extensive

	methods sync.Map // full method name -> *methodMetrics
}

// methodMetrics are one method's counters, resolved once.
type methodMetrics struct {
	typ, service, method string
	started, received    prometheus.Counter
	sent                 prometheus.Counter
	handling             prometheus.Observer // nil unless extensive
	handled              [numCodes]prometheus.Counter
	g                    *grpcMetrics
}

const numCodes = int(codes.Unauthenticated) + 1

func newGRPCMetrics(extensive bool) *grpcMetrics {
	labels := []string{"grpc_type", "grpc_service", "grpc_method"}
	g := &grpcMetrics{
		started: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_server_started_total",
			Help: "Total number of RPCs started on the server.",
		}, labels),
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_server_handled_total",
			Help: "Total number of RPCs completed on the server, regardless of success or failure.",
		}, append(labels, "grpc_code")),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_server_msg_received_total",
			Help: "Total number of RPC stream messages received on the server.",
		}, labels),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_server_msg_sent_total",
			Help: "Total number of gRPC stream messages sent by the server.",
		}, labels),
	}
	if extensive {
		g.handling = prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "grpc_server_handling_seconds",
			Help:    "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
			Buckets: prometheus.DefBuckets,
		}, labels)
	}
	return g
}

func (g *grpcMetrics) Describe(ch chan<- *prometheus.Desc) {
	g.started.Describe(ch)
	g.handled.Describe(ch)
	g.received.Describe(ch)
	g.sent.Describe(ch)
	if g.handling != nil {
		g.handling.Describe(ch)
	}
}

func (g *grpcMetrics) Collect(ch chan<- prometheus.Metric) {
	g.started.Collect(ch)
	g.handled.Collect(ch)
	g.received.Collect(ch)
	g.sent.Collect(ch)
	if g.handling != nil {
		g.handling.Collect(ch)
	}
}

func rpcType(clientStream, serverStream bool) string {
	switch {
	case clientStream && serverStream:
		return "bidi_stream"
	case clientStream:
		return "client_stream"
	case serverStream:
		return "server_stream"
	}
	return "unary"
}

func splitMethod(full string) (string, string) {
	full = strings.TrimPrefix(full, "/")
	if i := strings.Index(full, "/"); i >= 0 {
		return full[:i], full[i+1:]
	}
	return "unknown", "unknown"
}

func (g *grpcMetrics) method(full, typ string) *methodMetrics {
	if v, ok := g.methods.Load(full); ok {
		return v.(*methodMetrics)
	}
	svc, name := splitMethod(full)
	mm := &methodMetrics{typ: typ, service: svc, method: name, g: g}
	mm.started = g.started.WithLabelValues(typ, svc, name)
	mm.received = g.received.WithLabelValues(typ, svc, name)
	mm.sent = g.sent.WithLabelValues(typ, svc, name)
	if g.handling != nil {
		mm.handling = g.handling.WithLabelValues(typ, svc, name)
	}
	for c := range mm.handled {
		mm.handled[c] = g.handled.WithLabelValues(typ, svc, name, codes.Code(c).String())
	}
	v, _ := g.methods.LoadOrStore(full, mm)
	return v.(*methodMetrics)
}

func (mm *methodMetrics) handledCode(c codes.Code) prometheus.Counter {
	if int(c) >= numCodes {
		return mm.g.handled.WithLabelValues(mm.typ, mm.service, mm.method, c.String())
	}
	return mm.handled[c]
}

func (mm *methodMetrics) observeHandling(start time.Time) {
	if mm.handling != nil {
		mm.handling.Observe(time.Since(start).Seconds())
	}
}

// InitializeGRPC creates every method's series at zero, as
// go-grpc-prometheus' Register does, so that rates exist before the first
// call. Call it after every service is registered.
func (m *Metrics) InitializeGRPC(s *grpc.Server) {
	for svc, info := range s.GetServiceInfo() {
		for _, mi := range info.Methods {
			m.grpc.method("/"+svc+"/"+mi.Name, rpcType(mi.IsClientStream, mi.IsServerStream))
		}
	}
}

// UnaryServerInterceptor counts unary calls.
func (m *Metrics) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		mm := m.grpc.method(info.FullMethod, "unary")
		mm.started.Inc()
		mm.received.Inc()
		start := time.Now()
		resp, err := handler(ctx, req)
		if err == nil {
			mm.sent.Inc()
		}
		mm.handledCode(status.Code(err)).Inc()
		mm.observeHandling(start)
		return resp, err
	}
}

// StreamServerInterceptor counts streams and their messages.
func (m *Metrics) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		mm := m.grpc.method(info.FullMethod, rpcType(info.IsClientStream, info.IsServerStream))
		mm.started.Inc()
		start := time.Now()
		err := handler(srv, &countingStream{ServerStream: ss, mm: mm})
		mm.handledCode(status.Code(err)).Inc()
		mm.observeHandling(start)
		return err
	}
}

type countingStream struct {
	grpc.ServerStream
	mm *methodMetrics
}

func (s *countingStream) SendMsg(m any) error {
	err := s.ServerStream.SendMsg(m)
	if err == nil {
		s.mm.sent.Inc()
	}
	return err
}

func (s *countingStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if err == nil {
		s.mm.received.Inc()
	}
	return err
}

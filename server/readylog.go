package server

import (
	"context"
	"net/url"
)

// ServeReady waits until the member may serve clients (it published
// itself to the cluster), then logs etcd's lines for each client listener:
// "ready to serve client requests", then how the traffic is served. It
// returns ctx's error if ctx ends first. Operators' tooling waits for these
// lines, and the caller notifies systemd after it returns nil.
func (s *Server) ServeReady(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-s.node.Ready():
	}
	traffic := "grpc+http"
	if len(s.cfg.ListenClientHTTPURLs) > 0 {
		traffic = "grpc"
	}
	for i, l := range s.listeners {
		s.log.Info("ready to serve client requests")
		secure := false
		if i < len(s.cfg.ListenClientURLs) {
			if u, err := url.Parse(s.cfg.ListenClientURLs[i]); err == nil {
				secure = u.Scheme == "https" || u.Scheme == "unixs"
			}
		}
		if secure {
			s.log.Info("serving client traffic securely", "traffic", traffic, "address", l.Addr().String())
		} else {
			s.log.Info("serving client traffic insecurely; this is strongly discouraged!", "traffic", traffic, "address", l.Addr().String())
		}
	}
	// etcd's health notifier announces the gRPC health service once the
	// member serves.
	s.log.Info("grpc service status changed", "service", "", "status", "SERVING")
	return nil
}

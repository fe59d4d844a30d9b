package server

import healthpb "google.golang.org/grpc/health/grpc_health_v1"

// defragHealth is etcd's health notifier around a defragmentation: with
// --experimental-stop-grpc-service-on-defrag the gRPC health service
// answers NOT_SERVING while it runs (clients' health balancers move away);
// after every defragmentation it answers SERVING again and says so, as
// etcd logs it even when the flag is off.
func (f *frontend) defragHealth(running bool) {
	if f.health == nil {
		return
	}
	if running {
		if f.cfg.StopGRPCServiceOnDefrag {
			f.log.Warn("grpc service status changed", "service", "", "status", healthpb.HealthCheckResponse_NOT_SERVING.String(), "reason", "defrag is active")
			f.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
		}
		return
	}
	f.log.Info("grpc service status changed", "service", "", "status", healthpb.HealthCheckResponse_SERVING.String())
	f.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
}

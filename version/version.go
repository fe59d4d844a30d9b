// Package version holds sett's own version and the etcd versions it
// answers as: clients (kube-apiserver among them) gate features on the
// etcd server version they read from Maintenance.Status and /version.
package version

const (
	// Sett is sett's own release.
	Sett = "0.1.0"
	// Server is the etcd server version sett reports (etcd's version.Version).
	Server = "3.6.16"
	// Cluster is the cluster version a cluster of Server members settles on
	// (major.minor.0), as etcd's /version reports it.
	Cluster = "3.6.0"
	// ClusterMinor is the cluster version as etcd's gRPC answers and metrics
	// spell it (major.minor).
	ClusterMinor = "3.6"
	// Storage is the storage schema version etcd 3.6 reports in Status,
	// snapshots and /version.
	Storage = "3.6.0"
)

package main

import (
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/sett-dev/sett/internal/logging"
	"github.com/sett-dev/sett/server"
)

// options are the parsed command line: the member's config plus what only
// the binary needs.
type options struct {
	cfg      server.Config
	logLevel string
	// logging is etcd's --logger, --log-outputs, --log-format and rotation.
	logging    logging.Config
	configFile string
	version    bool
	// memoryLimit is the Go runtime's soft memory limit (GOMEMLIMIT).
	memoryLimit int64
	// heartbeatMs and electionMs are etcd's raft timing flags, in ms.
	heartbeatMs, electionMs uint
	// ignored lists etcd flags that were set but mean nothing to sett.
	ignored []string
}

// etcdOnlyFlags are etcd flags sett accepts and ignores (with a warning),
// so that an etcd command line starts sett. The value says whether the
// flag is boolean.
var etcdOnlyFlags = map[string]bool{
	"discovery-endpoints": false,
	"auth-token":          false, "auth-token-ttl": false, "backend-batch-interval": false, "backend-batch-limit": false,
	"backend-bbolt-freelist-type": false, "bcrypt-cost": false, "bootstrap-defrag-threshold-megabytes": false,
	"compact-hash-check-time": false, "compaction-batch-limit": false, "compaction-sleep-interval": false,
	"corrupt-check-time": false, "discovery": false, "discovery-cacert": false, "discovery-cert": false,
	"discovery-dial-timeout": false, "discovery-fallback": false, "discovery-insecure-skip-tls-verify": true,
	"discovery-insecure-transport": true, "discovery-keepalive-time": false, "discovery-keepalive-timeout": false,
	"discovery-key": false, "discovery-password": false, "discovery-proxy": false, "discovery-request-timeout": false,
	"discovery-srv": false, "discovery-srv-name": false, "discovery-token": false, "discovery-user": false,
	"distributed-tracing-address": false, "distributed-tracing-instance-id": false,
	"distributed-tracing-sampling-rate": false, "distributed-tracing-service-name": false,
	"downgrade-check-time": false, "enable-distributed-tracing": true,
	"experimental-bootstrap-defrag-threshold-megabytes": false, "experimental-compact-hash-check-enabled": true,
	"experimental-compact-hash-check-time": false, "experimental-compaction-batch-limit": false,
	"experimental-compaction-sleep-interval": false, "experimental-corrupt-check-time": false,
	"experimental-distributed-tracing-address": false, "experimental-distributed-tracing-instance-id": false,
	"experimental-distributed-tracing-sampling-rate": false, "experimental-distributed-tracing-service-name": false,
	"experimental-downgrade-check-time": false, "experimental-enable-distributed-tracing": true,
	"experimental-enable-lease-checkpoint": true, "experimental-enable-lease-checkpoint-persist": true,
	"experimental-initial-corrupt-check": true, "experimental-memory-mlock": true,
	"experimental-txn-mode-write-with-shared-buffer": true,
	"initial-election-tick-advance":                  true,
	"max-snapshots":                                  false, "max-wals": false, "memory-mlock": true,
	"raft-read-timeout": false, "raft-write-timeout": false,
	"strict-reconfig-check": true, "v2-deprecation": false,
	"feature-gates": false,
}

type urlList struct{ v *[]string }

func (u urlList) String() string {
	if u.v == nil {
		return ""
	}
	return strings.Join(*u.v, ",")
}
func (u urlList) Set(s string) error {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return fmt.Errorf("empty URL list")
	}
	*u.v = out
	return nil
}

// ignoredFlag accepts any value (or none, for booleans) and records it.
type ignoredFlag struct {
	name    string
	isBool  bool
	ignored *[]string
}

func (f ignoredFlag) String() string   { return "" }
func (f ignoredFlag) IsBoolFlag() bool { return f.isBool }
func (f ignoredFlag) Set(string) error {
	*f.ignored = append(*f.ignored, f.name)
	return nil
}

func newFlagSet(o *options, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("sett", flag.ContinueOnError)
	fs.SetOutput(out)
	c := &o.cfg
	fs.StringVar(&c.Name, "name", c.Name, "Human-readable name for this member.")
	fs.StringVar(&c.DataDir, "data-dir", "", "Path to the data directory (default \"${name}.sett\").")
	fs.Var(urlList{&c.ListenClientURLs}, "listen-client-urls", "List of URLs to listen on for client traffic.")
	fs.Var(urlList{&c.AdvertiseClientURLs}, "advertise-client-urls", "List of this member's client URLs to advertise.")
	fs.Var(urlList{&c.ListenPeerURLs}, "listen-peer-urls", "List of URLs to listen on for peer traffic.")
	fs.Var(urlList{&c.InitialAdvertisePeerURLs}, "initial-advertise-peer-urls", "List of this member's peer URLs to advertise.")
	fs.StringVar(&c.InitialCluster, "initial-cluster", "", "Initial cluster configuration for bootstrapping (name=peerURL,...).")
	fs.StringVar(&c.InitialClusterState, "initial-cluster-state", c.InitialClusterState, "Initial cluster state ('new' or 'existing').")
	fs.StringVar(&c.InitialClusterToken, "initial-cluster-token", c.InitialClusterToken, "Initial cluster token.")
	fs.IntVar(&c.MaxTxnOps, "max-txn-ops", c.MaxTxnOps, "Maximum number of operations permitted in a transaction.")
	fs.IntVar(&c.MaxRequestBytes, "max-request-bytes", c.MaxRequestBytes, "Maximum client request size in bytes the server will accept.")
	fs.Int64Var(&c.QuotaBackendBytes, "quota-backend-bytes", 0, "Raise alarms when backend size exceeds the given quota (0 defaults to low space quota).")
	fs.DurationVar(&c.GRPCKeepAliveMinTime, "grpc-keepalive-min-time", c.GRPCKeepAliveMinTime, "Minimum interval duration that a client should wait before pinging server.")
	fs.DurationVar(&c.GRPCKeepAliveInterval, "grpc-keepalive-interval", c.GRPCKeepAliveInterval, "Frequency duration of server-to-client ping to check if a connection is alive (0 to disable).")
	fs.DurationVar(&c.GRPCKeepAliveTimeout, "grpc-keepalive-timeout", c.GRPCKeepAliveTimeout, "Additional duration of wait before closing a non-responsive connection (0 to disable).")
	c.HostWhitelist, c.CORS = []string{"*"}, []string{"*"}
	fs.Var(nameList{&c.HostWhitelist}, "host-whitelist", "Comma-separated acceptable hostnames from HTTP client requests, if server is not secure (empty means allow all).")
	fs.Var(nameList{&c.CORS}, "cors", "Comma-separated white list of origins for CORS, or cross-origin resource sharing, (empty or * means allow all).")
	fs.BoolVar(&c.StopGRPCServiceOnDefrag, "experimental-stop-grpc-service-on-defrag", false, "Enable etcd gRPC service to stop serving client requests on defragmentation.")
	fs.StringVar(&c.Metrics, "metrics", "basic", "Set level of detail for exported metrics, specify 'extensive' to include server side grpc histogram metrics")
	fs.BoolVar(&c.SocketOpts.ReusePort, "socket-reuse-port", false, "Enable to set socket option SO_REUSEPORT on listeners allowing rebinding of a port already in use.")
	fs.BoolVar(&c.SocketOpts.ReuseAddress, "socket-reuse-address", false, "Enable to set socket option SO_REUSEADDR on listeners allowing binding to an address in TIME_WAIT state.")
	c.MaxConcurrentStreams = math.MaxUint32
	fs.Var(uint32Flag{&c.MaxConcurrentStreams}, "max-concurrent-streams", "Maximum concurrent streams that each client can open at a time.")
	c.WarningUnaryRequestDuration = server.DefaultWarningUnaryRequestDuration
	fs.DurationVar(&c.WarningUnaryRequestDuration, "warning-unary-request-duration", c.WarningUnaryRequestDuration, "Time duration after which a warning is generated if a unary request takes more time.")
	fs.DurationVar(&c.WarningUnaryRequestDuration, "experimental-warning-unary-request-duration", c.WarningUnaryRequestDuration, "Deprecated: use --warning-unary-request-duration.")
	fs.UintVar(&o.heartbeatMs, "heartbeat-interval", 100, "Time (in milliseconds) of a heartbeat interval.")
	fs.UintVar(&o.electionMs, "election-timeout", 1000, "Time (in milliseconds) for an election to timeout.")
	fs.Uint64Var(&c.SnapshotCount, "snapshot-count", c.SnapshotCount, "Number of committed transactions to trigger a snapshot to disk.")
	fs.Uint64Var(&c.CatchUpEntries, "snapshot-catchup-entries", 5000, "Number of entries for a slow follower to catch up after compacting the raft storage entries.")
	fs.Uint64Var(&c.CatchUpEntries, "experimental-snapshot-catchup-entries", 5000, "Deprecated: use --snapshot-catchup-entries.")
	addTLSFlags(fs, c)
	fs.DurationVar(&c.WatchProgressNotifyInterval, "watch-progress-notify-interval", 10*time.Minute, "Duration of periodic watch progress notifications.")
	fs.DurationVar(&c.WatchProgressNotifyInterval, "experimental-watch-progress-notify-interval", 10*time.Minute, "Deprecated: use --watch-progress-notify-interval.")
	fs.BoolVar(&c.EnableGRPCGateway, "enable-grpc-gateway", c.EnableGRPCGateway, "Enable GRPC gateway.")
	fs.BoolVar(&c.EnablePprof, "enable-pprof", false, "Enable runtime profiling data via HTTP server. Address is at client URL + \"/debug/pprof/\"")
	fs.StringVar(&o.logLevel, "log-level", "info", "Configures log level. Only supports debug, info, warn, error, panic, or fatal.")
	addLogFlags(fs, &o.logging)
	addRaftFlags(fs, &c.Raft)
	addCompactionFlags(fs, c)
	fs.StringVar(&o.configFile, "config-file", "", "Path to an etcd-style YAML configuration file; command-line flags are then ignored.")
	fs.BoolVar(&o.version, "version", false, "Print the version and exit.")

	fs.Int64Var(&c.Storage.BlockCacheBytes, "storage-block-cache-bytes", c.Storage.BlockCacheBytes, "Badger block cache size in bytes (bounds read cache memory).")
	fs.Int64Var(&c.Storage.IndexCacheBytes, "storage-index-cache-bytes", c.Storage.IndexCacheBytes, "Badger index and bloom filter cache size in bytes.")
	fs.Int64Var(&c.Storage.MemTableBytes, "storage-memtable-bytes", c.Storage.MemTableBytes, "Badger memtable size in bytes (each costs about 1.3x its size in memory).")
	fs.BoolVar(&c.Storage.UnsafeNoSync, "unsafe-no-fsync", false, "Disables fsync, unsafe, will cause data loss.")
	fs.Int64Var(&o.memoryLimit, "memory-limit-bytes", 256<<20, "Soft limit for the Go heap (as GOMEMLIMIT, which overrides it); the garbage collector works harder near it. 0 disables.")
	fs.IntVar(&c.Storage.NumMemtables, "storage-memtables", c.Storage.NumMemtables, "Number of Badger memtables held in memory.")

	names := make([]string, 0, len(etcdOnlyFlags))
	for n := range etcdOnlyFlags {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if r, ok := refusedFlags[n]; ok {
			fs.Var(refusedFlag{name: n, reason: r, isBool: etcdOnlyFlags[n]}, n, "etcd flag sett refuses: "+r+".")
			continue
		}
		fs.Var(ignoredFlag{name: n, isBool: etcdOnlyFlags[n], ignored: &o.ignored}, n, "etcd flag accepted for compatibility; ignored by sett.")
	}
	return fs
}

// addTLSFlags adds etcd's TLS and metrics-listener flags. The peer flags
// are kept in the config for when sett replicates.
func addTLSFlags(fs *flag.FlagSet, c *server.Config) {
	fs.Var(urlList{&c.ListenMetricsURLs}, "listen-metrics-urls", "List of URLs to listen on for the /metrics and /health endpoints.")
	fs.Var(urlList{&c.ListenClientHTTPURLs}, "listen-client-http-urls", "List of URLs to listen on for HTTP client traffic (health, version, metrics), apart from gRPC.")
	for _, side := range []struct {
		prefix, what, crl string
		info              *server.TLSInfo
	}{{"", "client server", "client-crl-file", &c.ClientTLS}, {"peer-", "peer server", "peer-crl-file", &c.PeerTLS}} {
		p, w, i := side.prefix, side.what, side.info
		fs.StringVar(&i.CertFile, p+"cert-file", "", "Path to the "+w+" TLS cert file.")
		fs.StringVar(&i.KeyFile, p+"key-file", "", "Path to the "+w+" TLS key file.")
		fs.StringVar(&i.TrustedCAFile, p+"trusted-ca-file", "", "Path to the "+w+" TLS trusted CA cert file.")
		fs.BoolVar(&i.ClientCertAuth, p+"client-cert-auth", false, "Enable "+w+" client cert authentication.")
		fs.StringVar(&i.CRLFile, side.crl, "", "Path to the "+w+" certificate revocation list file.")
		fs.BoolVar(&i.AutoTLS, p+"auto-tls", false, w+" TLS using generated certificates.")
		fs.StringVar(&i.ClientCertFile, p+"client-cert-file", "", "Path to an explicit cert file used when the "+w+" acts as a client.")
		fs.StringVar(&i.ClientKeyFile, p+"client-key-file", "", "Path to an explicit key file used when the "+w+" acts as a client.")
	}
	fs.BoolVar(&c.PeerTLS.SkipClientSANVerify, "peer-skip-client-san-verification", false, "Skip verification of SAN field in client certificate for peer connections.")
	fs.BoolVar(&c.PeerTLS.SkipClientSANVerify, "experimental-peer-skip-client-san-verification", false, "Deprecated: use --peer-skip-client-san-verification.")
	fs.StringVar(&c.PeerTLS.AllowedCN, "peer-cert-allowed-cn", "", "Comma-separated list of allowed CNs for inter-peer TLS authentication.")
	fs.StringVar(&c.PeerTLS.AllowedHostname, "peer-cert-allowed-hostname", "", "Comma-separated list of allowed SAN hostnames for inter-peer TLS authentication.")
	fs.StringVar(&c.ClientTLS.AllowedHostname, "client-cert-allowed-hostname", "", "Comma-separated list of allowed SAN hostnames for client cert authentication.")
	fs.StringVar(&c.TLS.MinVersion, "tls-min-version", "TLS1.2", "Minimum TLS version supported by the server (TLS1.2 or TLS1.3).")
	fs.StringVar(&c.TLS.MaxVersion, "tls-max-version", "", "Maximum TLS version supported by the server (TLS1.2 or TLS1.3; empty: the newest).")
	fs.Var(urlList{&c.TLS.CipherSuites}, "cipher-suites", "Comma-separated list of supported TLS cipher suites between client/server and peers (empty: Go's defaults).")
	fs.UintVar(&c.TLS.SelfSignedCertValidity, "self-signed-cert-validity", 1, "The validity period of the client and peer certificates generated with --auto-tls, in years.")
}

// configSections maps the keys of etcd's nested YAML TLS sections to flags.
var configSections = map[string]map[string]string{
	"client-transport-security": {
		"cert-file": "cert-file", "key-file": "key-file", "client-cert-file": "client-cert-file",
		"client-key-file": "client-key-file", "client-cert-auth": "client-cert-auth",
		"trusted-ca-file": "trusted-ca-file", "auto-tls": "auto-tls",
		"allowed-hostname": "client-cert-allowed-hostname",
	},
	"peer-transport-security": {
		"cert-file": "peer-cert-file", "key-file": "peer-key-file", "client-cert-file": "peer-client-cert-file",
		"client-key-file": "peer-client-key-file", "client-cert-auth": "peer-client-cert-auth",
		"trusted-ca-file": "peer-trusted-ca-file", "auto-tls": "peer-auto-tls",
		"allowed-cn": "peer-cert-allowed-cn", "allowed-hostname": "peer-cert-allowed-hostname",
		"skip-client-san-verification": "peer-skip-client-san-verification",
	},
}

// parseOptions reads flags, then ETCD_* environment variables for flags not
// given, then (if --config-file is set) the YAML file, which wins over both,
// as in etcd.
func parseOptions(args []string, env func(string) string, out io.Writer) (*options, error) {
	o := &options{cfg: server.DefaultConfig()}
	d := server.DefaultConfig().Storage
	o.cfg.Storage = d
	fs := newFlagSet(o, out)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("'%s' is not a valid flag", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || envErr != nil {
			return
		}
		key := "ETCD_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := env(key); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("invalid value %q for %s: %w", v, key, err)
			}
		}
	})
	if envErr != nil {
		return nil, envErr
	}
	if o.configFile != "" {
		if err := applyConfigFile(fs, o.configFile); err != nil {
			return nil, err
		}
	}
	// etcd's rules for the raft timing flags.
	if o.heartbeatMs == 0 || o.electionMs == 0 {
		return nil, fmt.Errorf("--heartbeat-interval and --election-timeout must be positive")
	}
	if 5*o.heartbeatMs > o.electionMs {
		return nil, fmt.Errorf("--election-timeout[%vms] should be at least as 5 times as --heartbeat-interval[%vms]", o.electionMs, o.heartbeatMs)
	}
	if o.electionMs > 50000 {
		return nil, fmt.Errorf("--election-timeout[%vms] is too long, and should be set less than 50000ms", o.electionMs)
	}
	o.cfg.HeartbeatInterval = time.Duration(o.heartbeatMs) * time.Millisecond
	o.cfg.ElectionTimeout = time.Duration(o.electionMs) * time.Millisecond
	return o, nil
}

// applyConfigFile sets flags from etcd's YAML keys (the flag names).
func applyConfigFile(fs *flag.FlagSet, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config file: %w", err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("parse config file %s: %w", path, err)
	}
	for section, keys := range configSections {
		sub, _ := m[section].(map[string]any)
		for k, v := range sub {
			if name, ok := keys[k]; ok {
				if _, set := m[name]; !set {
					m[name] = v
				}
			}
		}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if fs.Lookup(k) == nil {
			// etcd's file also holds nested sections (client-transport-
			// security, …) that have no flag of the same name.
			continue
		}
		var v string
		switch x := m[k].(type) {
		case nil:
			continue
		case string:
			v = x
		case bool:
			v = strconv.FormatBool(x)
		case float64:
			v = strconv.FormatFloat(x, 'f', -1, 64)
		case []any:
			parts := make([]string, len(x))
			for i, p := range x {
				parts[i] = fmt.Sprint(p)
			}
			v = strings.Join(parts, ",")
		default:
			v = fmt.Sprint(x)
		}
		if err := fs.Set(k, v); err != nil {
			return fmt.Errorf("config file %s: invalid value for %s: %w", path, k, err)
		}
	}
	return nil
}

// Package metrics exports a member's Prometheus metrics under etcd's names,
// types and labels, so that etcd dashboards and alerts work unchanged:
// server state (etcd_server_*), storage size and revisions (etcd_mvcc_*,
// etcd_debugging_mvcc_*), commit latency (etcd_disk_*), and the gRPC
// server metrics of go-grpc-prometheus (grpc_server_*), which etcd uses.
//
// Every member has its own registry (several members may run in one
// process, as in tests), which also holds the Go and process collectors.
package metrics

import (
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Source is what the gauges read at scrape time. Nil functions leave their
// metrics out.
type Source struct {
	MemberID uint64
	// ServerVersion and ClusterVersion label etcd_server_version and
	// etcd_cluster_version.
	ServerVersion  string
	ClusterVersion string
	// QuotaBytes is the effective backend quota.
	QuotaBytes int64
	// Extensive is --metrics=extensive: grpc_server_handling_seconds, the
	// per-method latency histogram, is exported too.
	Extensive bool

	// Space returns the store's total and in-use size in bytes.
	Space func() (total, inUse int64)
	// Rev and CompactRev are the current revision and compaction point.
	Rev, CompactRev func() int64
	// Raft is the member's raft node; nil reports a lone leader.
	Raft RaftState
	// AppliedIndex is the last applied log index, when Raft is nil.
	AppliedIndex func() uint64
	// Keys counts the live keys; it may be slow, and is cached for
	// KeysMaxAge.
	Keys       func() (int64, error)
	KeysMaxAge time.Duration
	// Alarms lists the active alarms as (member ID, alarm name) pairs.
	Alarms func() [][2]string
}

// Metrics is one member's metrics.
type Metrics struct {
	Registry *prometheus.Registry

	backendCommit  prometheus.Histogram
	walFsync       prometheus.Histogram
	defragDuration prometheus.Histogram
	snapDuration   prometheus.Histogram
	defragInflight prometheus.Gauge
	healthSuccess  prometheus.Counter
	healthFailed   prometheus.Counter
	healthCheck    *prometheus.GaugeVec
	healthChecks   *prometheus.CounterVec
	proposalsFail  prometheus.Counter

	snapshotReceived *prometheus.CounterVec

	grpc *grpcMetrics
}

// New builds and registers a member's metrics.
func New(src Source) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{Registry: reg}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)

	gaugeFunc := func(sub, name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "etcd", Subsystem: sub, Name: name, Help: help,
		}, f))
	}
	constGauge := func(sub, name, help, label, value string) {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "etcd", Subsystem: sub, Name: name, Help: help,
		}, []string{label})
		g.WithLabelValues(value).Set(1)
		reg.MustRegister(g)
	}

	rs := src.Raft
	if rs == nil {
		rs = loneLeader{src.AppliedIndex}
	}
	gaugeFunc("server", "has_leader", "Whether or not a leader exists. 1 is existence, 0 is not.", func() float64 { return boolValue(rs.Leader() != 0) })
	gaugeFunc("server", "is_leader", "Whether or not this member is a leader. 1 if is, 0 otherwise.", func() float64 { return boolValue(rs.IsLeader()) })
	gaugeFunc("server", "is_learner", "Whether or not this member is a learner. 1 if is, 0 otherwise.", func() float64 { return boolValue(rs.IsLearner()) })
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "server", Name: "leader_changes_seen_total",
		Help: "The number of leader changes seen.",
	}, func() float64 { return float64(rs.LeaderChanges()) }))
	m.snapshotReceived = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "network", Name: "snapshot_receive_success",
		Help: "Total number of successful snapshot receives",
	}, []string{"From"})
	reg.MustRegister(m.snapshotReceived)
	constGauge("server", "id", "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
		"server_id", fmt.Sprintf("%x", src.MemberID))
	if src.ServerVersion != "" {
		constGauge("server", "version", "Which version is running. 1 for 'server_version' label with current version.",
			"server_version", src.ServerVersion)
	}
	if src.ClusterVersion != "" {
		constGauge("cluster", "version", "Which version is running. 1 for 'cluster_version' label with current cluster version",
			"cluster_version", src.ClusterVersion)
	}
	constGauge("server", "go_version", "Which Go version server is running with. 1 for 'server_go_version' label with current version.",
		"server_go_version", runtime.Version())
	gaugeFunc("server", "quota_backend_bytes", "Current backend storage quota size in bytes.",
		func() float64 { return float64(src.QuotaBytes) })

	gaugeFunc("server", "proposals_committed_total", "The total number of consensus proposals committed.", func() float64 { return float64(rs.CommittedIndex()) })
	gaugeFunc("server", "proposals_applied_total", "The total number of consensus proposals applied.", func() float64 { return float64(rs.AppliedIndex()) })
	gaugeFunc("server", "proposals_pending", "The current number of pending proposals to commit.", func() float64 { return 0 })
	m.proposalsFail = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "server", Name: "proposals_failed_total",
		Help: "The total number of failed proposals seen.",
	})
	reg.MustRegister(m.proposalsFail)

	if src.Space != nil {
		sp := &spaceCache{f: src.Space}
		gaugeFunc("mvcc", "db_total_size_in_bytes", "Total size of the underlying database physically allocated in bytes.",
			func() float64 { t, _ := sp.get(); return float64(t) })
		gaugeFunc("mvcc", "db_total_size_in_use_in_bytes", "Total size of the underlying database logically in use in bytes.",
			func() float64 { _, u := sp.get(); return float64(u) })
	}
	if src.Rev != nil {
		gaugeFunc("debugging_mvcc", "current_revision", "The current revision of store.", func() float64 { return float64(src.Rev()) })
	}
	if src.CompactRev != nil {
		gaugeFunc("debugging_mvcc", "compact_revision", "The revision of the last compaction in store.", func() float64 { return float64(src.CompactRev()) })
	}
	if src.Keys != nil {
		kc := &keyCounter{f: src.Keys, maxAge: src.KeysMaxAge}
		gaugeFunc("debugging_mvcc", "keys_total", "Total number of keys.", func() float64 { return float64(kc.get()) })
	}
	if src.Alarms != nil {
		reg.MustRegister(&alarmCollector{f: src.Alarms, desc: prometheus.NewDesc(
			"etcd_debugging_server_alarms",
			"Alarms for every member in cluster. 1 for 'server_id' label with current ID. 2 for 'alarm_type' label with type of this alarm",
			[]string{"server_id", "alarm_type"}, nil)})
	}

	// etcd's buckets: 1 ms to about 8 s.
	latency := prometheus.ExponentialBuckets(0.001, 2, 14)
	m.backendCommit = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "etcd", Subsystem: "disk", Name: "backend_commit_duration_seconds",
		Help: "The latency distributions of commit called by backend.", Buckets: latency,
	})
	m.walFsync = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "etcd", Subsystem: "disk", Name: "wal_fsync_duration_seconds",
		Help: "The latency distributions of fsync called by WAL.", Buckets: latency,
	})
	m.defragDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "etcd", Subsystem: "disk", Name: "backend_defrag_duration_seconds",
		Help: "The latency distribution of backend defragmentation.", Buckets: prometheus.ExponentialBuckets(.1, 2, 13),
	})
	m.snapDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "etcd", Subsystem: "disk", Name: "backend_snapshot_duration_seconds",
		Help: "The latency distribution of backend snapshots.", Buckets: prometheus.ExponentialBuckets(.01, 2, 17),
	})
	m.defragInflight = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "etcd", Subsystem: "disk", Name: "defrag_inflight",
		Help: "Whether or not defrag is active on the member. 1 means active, 0 means not.",
	})
	m.healthSuccess = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "server", Name: "health_success",
		Help: "The total number of successful health checks",
	})
	m.healthFailed = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "server", Name: "health_failures",
		Help: "The total number of failed health checks",
	})
	m.healthCheck = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "etcd", Subsystem: "server", Name: "healthcheck",
		Help: "The result of each kind of healthcheck.",
	}, []string{"type", "name"})
	m.healthChecks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "server", Name: "healthchecks_total",
		Help: "The total number of each kind of healthcheck.",
	}, []string{"type", "name", "status"})
	reg.MustRegister(m.backendCommit, m.walFsync, m.defragDuration, m.snapDuration, m.defragInflight,
		m.healthSuccess, m.healthFailed, m.healthCheck, m.healthChecks)

	m.grpc = newGRPCMetrics(src.Extensive)
	reg.MustRegister(m.grpc)
	return m
}

// Handler serves the registry in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.InstrumentMetricHandler(m.Registry, promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
}

// ObserveCommit records one durable storage commit (one group-committed
// batch): the backend commit, which on sett is also the log fsync.
func (m *Metrics) ObserveCommit(d time.Duration) {
	if m == nil {
		return
	}
	m.backendCommit.Observe(d.Seconds())
	m.walFsync.Observe(d.Seconds())
}

// ProposalFailed counts a proposal that failed to commit.
func (m *Metrics) ProposalFailed() {
	if m != nil {
		m.proposalsFail.Inc()
	}
}

// Defrag records a defragmentation starting (running) or ending.
func (m *Metrics) Defrag(running bool, took time.Duration) {
	if m == nil {
		return
	}
	if running {
		m.defragInflight.Set(1)
		return
	}
	m.defragInflight.Set(0)
	m.defragDuration.Observe(took.Seconds())
}

// Snapshot records a snapshot sent.
func (m *Metrics) Snapshot(took time.Duration) {
	if m != nil {
		m.snapDuration.Observe(took.Seconds())
	}
}

// Health counts a /health answer.
func (m *Metrics) Health(ok bool) {
	if m == nil {
		return
	}
	if ok {
		m.healthSuccess.Inc()
	} else {
		m.healthFailed.Inc()
	}
}

// HealthCheck records one named check of /livez or /readyz.
func (m *Metrics) HealthCheck(typ, name string, ok bool) {
	if m == nil {
		return
	}
	v, st := 0.0, "error"
	if ok {
		v, st = 1, "success"
	}
	m.healthCheck.WithLabelValues(typ, name).Set(v)
	m.healthChecks.WithLabelValues(typ, name, st).Inc()
}

// spaceCache keeps one measurement for both size gauges of a scrape.
type spaceCache struct {
	f     func() (int64, int64)
	mu    sync.Mutex
	at    time.Time
	total int64
	inUse int64
}

func (c *spaceCache) get() (int64, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) > 100*time.Millisecond {
		c.total, c.inUse = c.f()
		c.at = time.Now()
	}
	return c.total, c.inUse
}

// keyCounter caches a slow count; a stale value is served while a fresh
// one is computed in the background.
type keyCounter struct {
	f       func() (int64, error)
	maxAge  time.Duration
	mu      sync.Mutex
	at      time.Time
	n       int64
	running bool
}

func (k *keyCounter) get() int64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.at.IsZero() {
		// The first scrape waits for a value.
		k.mu.Unlock()
		n, err := k.f()
		k.mu.Lock()
		if err == nil {
			k.n, k.at = n, time.Now()
		}
		return k.n
	}
	if time.Since(k.at) > k.maxAge && !k.running {
		k.running = true
		go func() {
			n, err := k.f()
			k.mu.Lock()
			defer k.mu.Unlock()
			k.running = false
			if err == nil {
				k.n, k.at = n, time.Now()
			}
		}()
	}
	return k.n
}

type alarmCollector struct {
	f    func() [][2]string
	desc *prometheus.Desc
}

func (a *alarmCollector) Describe(ch chan<- *prometheus.Desc) { ch <- a.desc }
func (a *alarmCollector) Collect(ch chan<- prometheus.Metric) {
	for _, al := range a.f() {
		ch <- prometheus.MustNewConstMetric(a.desc, prometheus.GaugeValue, 1, al[0], al[1])
	}
}

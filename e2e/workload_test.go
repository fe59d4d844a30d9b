package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// mode is the shape of one e2e run, chosen by SETT_E2E_DURATION: unset,
// a short run for `make test` that compacts every 20s; set (e.g. 20m), rounds
// go on that long per store at the default compaction interval.
type mode struct {
	duration   time.Duration // 0: exactly minRounds
	minRounds  int
	compaction time.Duration
	eventTTL   time.Duration
	nodes      int
	mtls       bool
	size       Size
}

func modeFromEnv(t *testing.T) mode {
	m := mode{
		minRounds: 3, compaction: 20 * time.Second, eventTTL: 30 * time.Second, nodes: 3, mtls: true,
		size: Size{ConfigMaps: 40, Secrets: 20, Widgets: 20, Finalized: 5, Events: 10, Replicas: 9, PageSize: 25},
	}
	if d := os.Getenv("SETT_E2E_DURATION"); d != "" {
		dur, err := time.ParseDuration(d)
		if err != nil {
			t.Fatalf("SETT_E2E_DURATION: %v", err)
		}
		m.duration, m.minRounds = dur, 2
		m.compaction, m.eventTTL, m.nodes, m.mtls = 5*time.Minute, 2*time.Minute, 5, false
		m.size = Size{ConfigMaps: 100, Secrets: 50, Widgets: 50, Finalized: 10, Events: 30, Replicas: 15, PageSize: 50}
	}
	switch os.Getenv("SETT_E2E_TRANSPORT") {
	case "mtls":
		m.mtls = true
	case "plain":
		m.mtls = false
	case "":
	default:
		t.Fatalf("SETT_E2E_TRANSPORT must be mtls or plain")
	}
	return m
}

func (m mode) String() string {
	transport := "plain HTTP"
	if m.mtls {
		transport = "mutual TLS"
	}
	length := fmt.Sprintf("%d rounds", m.minRounds)
	if m.duration > 0 {
		length = fmt.Sprintf("%v per store", m.duration)
	}
	return fmt.Sprintf("%s, store on %s, compaction every %v, event TTL %v, %d hollow nodes, per round %+v",
		length, transport, m.compaction, m.eventTTL, m.nodes, m.size)
}

// TestControlPlaneWorkload runs a whole control plane (kube-apiserver,
// controller manager, scheduler, hollow kubelets) on real etcd and then on
// sett, drives the same workload on both, restarts the store in the middle,
// checks that nothing was lost or missed, and writes a table comparing the
// phases' durations (SETT_E2E_TIMINGS, default bin/e2e-timings.md).
func TestControlPlaneWorkload(t *testing.T) {
	m := modeFromEnv(t)
	t.Logf("mode: %s", m)
	stores := []StoreKind{Etcd, Sett}
	if s := os.Getenv("SETT_E2E_STORES"); s != "" {
		stores = nil
		for _, k := range strings.Split(s, ",") {
			stores = append(stores, StoreKind(k))
		}
	}
	bins := Binaries{
		APIServer:         binary(t, "kube-apiserver"),
		ControllerManager: binary(t, "kube-controller-manager"),
		Scheduler:         binary(t, "kube-scheduler"),
		Kubemark:          binary(t, "kubemark"),
	}
	results := map[StoreKind]*Timings{}
	summaries := map[StoreKind]string{}
	for _, kind := range stores {
		ok := t.Run(string(kind), func(t *testing.T) {
			b := bins
			b.Store = binary(t, string(kind))
			results[kind], summaries[kind] = runPlane(t, kind, b, m)
		})
		if !ok {
			return
		}
	}
	if results[Etcd] == nil || results[Sett] == nil {
		return
	}
	report := fmt.Sprintf("## Kubernetes control plane: etcd vs sett\n\nkube-apiserver 1.36.3, %s.\nMean wall time of one run of each phase.\n\n%s\n- etcd: %s\n- sett: %s\n",
		m, TimingTable("etcd", results[Etcd], "sett", results[Sett]), summaries[Etcd], summaries[Sett])
	t.Log("\n" + report)
	path := os.Getenv("SETT_E2E_TIMINGS")
	if path == "" {
		path = filepath.Join(repoRoot(t), "bin", "e2e-timings.md")
	}
	if err := os.WriteFile(path, []byte(report), 0o644); err != nil {
		t.Errorf("writing the timings: %v", err)
	}
}

// runPlane runs the workload on one store and checks it; it returns the
// phase timings and a one-line summary of what was written.
func runPlane(t *testing.T, kind StoreKind, bins Binaries, m mode) (*Timings, string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	started := time.Now()
	cp, err := StartControlPlane(ctx, dir, bins, PlaneOptions{Kind: kind, MTLS: m.mtls,
		CompactionInterval: m.compaction, EventTTL: m.eventTTL, Nodes: m.nodes})
	if cp != nil {
		t.Cleanup(func() {
			if t.Failed() {
				for _, p := range cp.Procs() {
					t.Logf("--- %s log tail ---\n%s", p.Name, p.Tail(25))
				}
			}
			cp.Stop()
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	startup := time.Since(started)
	t.Logf("%s: control plane ready in %v", kind, startup.Round(time.Millisecond))

	w, err := NewWorkload(cp, m.size)
	if err != nil {
		t.Fatal(err)
	}
	w.Timings.Add("control-plane-start", startup)
	if err := w.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	m0 := scrape(t, ctx, cp)
	var m1, m2 Metrics
	var window [2]int
	restarted := false
	runStart := time.Now()
	round := 0
	for ; round < m.minRounds || time.Since(runStart) < m.duration; round++ {
		if err := w.Round(ctx, round); err != nil {
			t.Fatal(err)
		}
		mid := m.duration == 0 && round == (m.minRounds-1)/2 || m.duration > 0 && time.Since(runStart) >= m.duration/2
		if !restarted && mid {
			m1 = scrape(t, ctx, cp)
			t.Logf("%s: restarting the store after round %d", kind, round)
			if window, err = w.RestartStore(ctx); err != nil {
				t.Fatal(err)
			}
			restarted = true
			m2 = scrape(t, ctx, cp)
		}
	}
	if !restarted {
		t.Fatal("the store was never restarted")
	}
	t.Logf("%s: %d rounds in %v", kind, round, time.Since(runStart).Round(time.Second))

	if err := w.Timings.Time("namespace-deletion", func() error { return w.CheckNamespacesGone(ctx) }); err != nil {
		t.Error(err)
	}
	checkEvents(t, ctx, w, m.eventTTL)
	if err := w.Timings.Time("informers-converge", func() error { return w.Watch.Converged(ctx, 2*time.Minute) }); err != nil {
		t.Error(err)
	}
	gaps, events, deletes := w.Watch.Gaps()
	if len(gaps) > 0 {
		t.Errorf("the configmap informer missed %d changes: %v", len(gaps), gaps[:min(len(gaps), 20)])
	}
	m3 := scrape(t, ctx, cp)
	checkMetrics(t, m, m0, m1, m2, m3)
	logs := cp.APIServer.Logs()
	for _, line := range StorageErrors(logs, [][2]int{window}) {
		t.Errorf("apiserver storage error: %s", line)
	}
	t.Logf("%d apiserver log lines report storage errors during the store restart (expected)", len(StorageErrors(logs[window[0]:window[1]], nil)))
	summary := summarize(t, ctx, w, round, events, deletes)
	t.Logf("%s: %s", kind, summary)
	return w.Timings, summary
}

func scrape(t *testing.T, ctx context.Context, cp *ControlPlane) Metrics {
	t.Helper()
	m, err := cp.ScrapeAPIServer(ctx)
	if err != nil {
		t.Fatalf("apiserver metrics: %v", err)
	}
	return m
}

// checkEvents waits until the oldest workload event is past its TTL, then
// checks expiry of every event.
func checkEvents(t *testing.T, ctx context.Context, w *Workload, ttl time.Duration) {
	t.Helper()
	w.mu.Lock()
	restart := w.lastRestart
	w.mu.Unlock()
	from := w.OldestEvent()
	if restart.After(from) {
		from = restart
	}
	if wait := time.Until(from.Add(ttl + 20*time.Second)); wait > 0 {
		t.Logf("waiting %v for the first events to expire", wait.Round(time.Second))
		time.Sleep(wait)
	}
	expired, err := w.CheckEvents(ctx, ttl)
	if err != nil {
		t.Error(err)
	}
	if expired == 0 {
		t.Errorf("no event expired with a TTL of %v", ttl)
	}
}

// checkMetrics reads the apiserver's storage metrics: consistent lists are
// served from the watch cache without falling back to the store, no
// storage request failed and no cache consistency check failed, outside
// the store restart (between m1 and m2).
func checkMetrics(t *testing.T, m mode, m0, m1, m2, m3 Metrics) {
	t.Helper()
	outside := func(name string, match map[string]string) float64 {
		return m1.Sum(name, match) - m0.Sum(name, match) + m3.Sum(name, match) - m2.Sum(name, match)
	}
	const consistent = "apiserver_watch_cache_consistent_read_total"
	if n := m3.Sum(consistent, map[string]string{"success": "true", "fallback": "false"}); n == 0 {
		t.Errorf("%s: no consistent read served from the watch cache", consistent)
	}
	if n := outside(consistent, map[string]string{"fallback": "true"}); n > 0 {
		t.Errorf("%s: %v consistent reads fell back to the store (the cache did not catch up in time)", consistent, n)
	}
	if n := outside(consistent, map[string]string{"success": "false"}); n > 0 {
		t.Errorf("%s: %v consistent reads failed", consistent, n)
	}
	if n := m3.Sum("apiserver_cache_list_total", nil); n == 0 {
		t.Error("apiserver_cache_list_total: no list served from the watch cache")
	}
	if n := outside("etcd_request_errors_total", nil); n > 0 {
		t.Errorf("etcd_request_errors_total: %v failed storage requests", n)
	}
	t.Logf("consistent reads from the watch cache %v (fallbacks to the store %v, all during the restart), lists served by the cache %v, storage request errors %v (outside the restart %v)",
		m3.Sum(consistent, map[string]string{"fallback": "false"}), m3.Sum(consistent, map[string]string{"fallback": "true"}),
		m3.Sum("apiserver_cache_list_total", nil), m3.Sum("etcd_request_errors_total", nil), outside("etcd_request_errors_total", nil))
	const checks = "apiserver_storage_consistency_checks_total"
	if n := m3.Sum(checks, map[string]string{"status": "failure"}) + m3.Sum(checks, map[string]string{"status": "error"}); n > 0 {
		t.Errorf("%s: %v failed checks between the watch cache and the store", checks, n)
	}
	// The checker runs every 5 to 7.5 minutes.
	if n := m3.Sum(checks, map[string]string{"status": "success"}); m.duration >= 16*time.Minute && n == 0 {
		t.Errorf("%s: no successful check in %v", checks, m.duration)
	} else {
		t.Logf("%s: %v successful checks", checks, n)
	}
}

// summarize counts what the workload left behind in the store.
func summarize(t *testing.T, ctx context.Context, w *Workload, rounds, informerEvents, informerDeletes int) string {
	t.Helper()
	snap, err := w.snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	count := func(kind string) int { return len(snap[kind]) }
	pods, err := w.kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := w.cp.Store.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d rounds; at the end %d configmaps, %d secrets, %d widgets, %d pods; store revision %d, db %d KiB; configmap informer handled %d events (%d deletes)",
		rounds, count("configmaps"), count("secrets"), count("widgets"), len(pods.Items), st.Header.Revision, st.DbSize/1024, informerEvents, informerDeletes)
}

package server

import (
	"bytes"
	"context"
	"encoding/json"
	"expvar"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/sett-dev/sett/metrics"
	"github.com/sett-dev/sett/storage"
	"github.com/sett-dev/sett/version"
)

// healthTimeout bounds the read a health check makes (etcd's request
// timeout with its default election timeout).
const healthTimeout = 7 * time.Second

// httpAPI serves etcd's HTTP endpoints on the client (and metrics) URLs:
// /health, /livez, /readyz, /version, /metrics and /debug/vars, with
// etcd's bodies, status codes and headers.
type httpAPI struct {
	store   *storage.Store
	metrics *metrics.Metrics
	log     *slog.Logger
	pprof   bool // --enable-pprof: /debug/pprof, as etcd serves it
	// hostWhitelist (--host-whitelist) and cors (--cors) are etcd's
	// access-control lists of the client port's HTTP handler.
	hostWhitelist, cors []string
	// v3 is the gRPC gateway (nil with --enable-grpc-gateway=false, where
	// /v3/ paths are not found, as in etcd).
	v3 http.Handler
}

// clientHandler is what etcd serves next to gRPC on a client URL.
func (h *httpAPI) clientHandler() http.Handler {
	mux := http.NewServeMux()
	h.installHealth(mux)
	mux.HandleFunc("/version", h.serveVersion)
	mux.Handle("/metrics", h.metrics.Handler())
	mux.Handle("/debug/vars", expvar.Handler())
	if h.v3 != nil {
		mux.Handle("/v3/", h.v3)
	}
	if h.pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return newAccessController(mux, h.hostWhitelist, h.cors, h.log)
}

// metricsHandler is what etcd serves on --listen-metrics-urls.
func (h *httpAPI) metricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", h.metrics.Handler())
	h.installHealth(mux)
	return mux
}

func allowGet(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet {
		return true
	}
	w.Header().Set("Allow", http.MethodGet)
	http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
	return false
}

func (h *httpAPI) serveVersion(w http.ResponseWriter, r *http.Request) {
	if !allowGet(w, r) {
		return
	}
	b, _ := json.Marshal(struct {
		Server  string `json:"etcdserver"`
		Cluster string `json:"etcdcluster"`
		Storage string `json:"storage"`
	}{version.Server, version.Cluster, version.Storage})
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// health is etcd's /health body.
type health struct {
	Health string `json:"health"`
	Reason string `json:"reason"`
}

func (h *httpAPI) installHealth(mux *http.ServeMux) {
	mux.HandleFunc("/health", h.serveHealth)
	h.installChecks(mux, "livez", []namedCheck{
		{"serializable_read", h.readCheck},
	})
	h.installChecks(mux, "readyz", []namedCheck{
		{"data_corruption", h.alarmCheck(pb.AlarmType_CORRUPT)},
		{"serializable_read", h.readCheck},
		{"linearizable_read", h.readCheck}, // one member: every read is linearizable
		{"non_learner", func(context.Context) error { return nil }},
	})
}

// serveHealth is etcd's /health: alarms (minus ?exclude=NAME), then the
// leader (always present), then a read.
func (h *httpAPI) serveHealth(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		h.log.Warn("/health error", "status-code", http.StatusMethodNotAllowed)
		return
	}
	excluded := querySet(r, "exclude")
	res := health{Health: "true"}
	for _, a := range h.store.Alarms(pb.AlarmType_NONE) {
		if excluded[a.Alarm.String()] {
			continue
		}
		res.Health = "false"
		switch a.Alarm {
		case pb.AlarmType_NOSPACE:
			res.Reason = "ALARM NOSPACE"
		case pb.AlarmType_CORRUPT:
			res.Reason = "ALARM CORRUPT"
		default:
			res.Reason = "ALARM UNKNOWN"
		}
		break
	}
	if res.Health == "true" {
		if err := h.readCheck(r.Context()); err != nil {
			res = health{Health: "false", Reason: fmt.Sprintf("RANGE ERROR:%s", err)}
		}
	}
	h.metrics.Health(res.Health == "true")
	d, _ := json.Marshal(res)
	if res.Health != "true" {
		http.Error(w, string(d), http.StatusServiceUnavailable)
		h.log.Warn("/health error", "output", string(d), "status-code", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusOK)
	w.Write(d)
}

type namedCheck struct {
	name  string
	check func(ctx context.Context) error
}

// installChecks serves /<kind> (every check, minus ?exclude=NAME) and
// /<kind>/<name> (one check), with etcd's plain-text answers: "ok", the
// per-check lines with ?verbose, the failures with status 503.
func (h *httpAPI) installChecks(mux *http.ServeMux, kind string, checks []namedCheck) {
	run := func(ctx context.Context, cs []namedCheck) (bool, string) {
		ok := true
		var out bytes.Buffer
		for _, c := range cs {
			if err := c.check(ctx); err != nil {
				fmt.Fprintf(&out, "[-]%s failed: %v\n", c.name, err)
				ok = false
				h.metrics.HealthCheck(kind, c.name, false)
			} else {
				fmt.Fprintf(&out, "[+]%s ok\n", c.name)
				h.metrics.HealthCheck(kind, c.name, true)
			}
		}
		return ok, out.String()
	}
	handler := func(path string, pick func(r *http.Request) []namedCheck) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if !allowGet(w, r) {
				h.log.Warn("Health request error", "path", path, "status-code", http.StatusMethodNotAllowed)
				return
			}
			ok, reason := run(r.Context(), pick(r))
			if !ok {
				http.Error(w, reason, http.StatusServiceUnavailable)
				h.log.Error("Health check error", "path", path, "reason", reason, "status-code", http.StatusServiceUnavailable)
				return
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			if _, verbose := r.URL.Query()["verbose"]; verbose {
				fmt.Fprint(w, reason)
			}
			fmt.Fprint(w, "ok\n")
		}
	}
	root := "/" + kind
	mux.Handle(root, handler(root, func(r *http.Request) []namedCheck {
		excluded := querySet(r, "exclude")
		var cs []namedCheck
		for _, c := range checks {
			if excluded[c.name] {
				delete(excluded, c.name)
				continue
			}
			cs = append(cs, c)
		}
		if len(excluded) > 0 {
			var names []string
			for n := range excluded {
				names = append(names, fmt.Sprintf("%q", n))
			}
			h.log.Warn("some health checks cannot be excluded", "missing-health-checks", strings.Join(names, ","))
		}
		return cs
	}))
	for _, c := range checks {
		path := root + "/" + c.name
		mux.Handle(path, handler(path, func(*http.Request) []namedCheck { return []namedCheck{c} }))
	}
}

func (h *httpAPI) readCheck(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	_, err := h.store.Range(ctx, &pb.RangeRequest{KeysOnly: true, Limit: 1})
	return err
}

func (h *httpAPI) alarmCheck(t pb.AlarmType) func(context.Context) error {
	return func(context.Context) error {
		if len(h.store.Alarms(t)) > 0 {
			return fmt.Errorf("alarm activated: %s", t)
		}
		return nil
	}
}

func querySet(r *http.Request, name string) map[string]bool {
	set := map[string]bool{}
	for _, v := range r.URL.Query()[name] {
		if v != "" {
			set[v] = true
		}
	}
	return set
}

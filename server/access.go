package server

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
)

// accessController is etcd's guard in front of the client port's HTTP
// handler: /v3beta/ paths are served as /v3/; a plain-HTTP request whose
// Host is not in --host-whitelist gets 421 (DNS rebinding, CVE-2018-5702);
// CORS headers go to the origins --cors allows; OPTIONS is answered 200.
type accessController struct {
	mux     http.Handler
	hosts   map[string]bool // nil: any host
	origins map[string]bool // nil: any origin ("*")
	log     *slog.Logger
}

func newAccessController(mux http.Handler, hosts, origins []string, log *slog.Logger) accessController {
	return accessController{mux: mux, hosts: allowList(hosts), origins: allowList(origins), log: log}
}

// allowList is the set of names, or nil when every name is allowed (an
// empty list or one holding "*").
func allowList(names []string) map[string]bool {
	set := map[string]bool{}
	for _, n := range names {
		if n = strings.TrimSpace(n); n != "" {
			if n == "*" {
				return nil
			}
			set[n] = true
		}
	}
	if len(set) == 0 {
		return nil
	}
	return set
}

func (a accessController) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/v3beta/") {
		r.URL.Path = "/v3/" + strings.TrimPrefix(r.URL.Path, "/v3beta/")
	}
	if r.TLS == nil && a.hosts != nil {
		host := r.Host
		if h, _, err := net.SplitHostPort(r.Host); err == nil {
			host = h
		}
		if !a.hosts[host] {
			a.log.Warn("rejecting HTTP request to prevent DNS rebinding attacks", "host", host)
			http.Error(w, unrecognizedHost(host), http.StatusMisdirectedRequest)
			return
		}
	}
	if a.origins == nil {
		corsHeaders(w, "*")
	} else if origin := r.Header.Get("Origin"); a.origins[origin] {
		corsHeaders(w, origin)
	}
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusOK)
		return
	}
	a.mux.ServeHTTP(w, r)
}

func corsHeaders(w http.ResponseWriter, origin string) {
	h := w.Header()
	h.Add("Access-Control-Allow-Methods", "POST, GET, OPTIONS, PUT, DELETE")
	h.Add("Access-Control-Allow-Origin", origin)
	h.Add("Access-Control-Allow-Headers", "accept, content-type, authorization")
}

// unrecognizedHost is etcd's 421 body, word for word: clients and
// operators match on it.
func unrecognizedHost(host string) string {
	return fmt.Sprintf(`
etcd received your request, but the Host header was unrecognized.

To fix this, choose one of the following options:
- Enable TLS, then any HTTPS request will be allowed.
- Add the hostname you want to use to the whitelist in settings.
  - e.g. etcd --host-whitelist %q

This requirement has been added to help prevent "DNS Rebinding" attacks (CVE-2018-5702).
`, host)
}

package compat

import (
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/sett-dev/sett/internal/testproc"
)

// TestHTTPAccessControl: --host-whitelist and --cors on the client port's
// HTTP answers give etcd's status, body and CORS headers.
func TestHTTPAccessControl(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and sett")
	}
	type request struct {
		method, path, host, origin string
	}
	requests := []request{
		{"GET", "/version", "", ""},
		{"GET", "/health", "good.example", "http://a.example:8080"},
		{"GET", "/version", "evil.example", "http://b.example"},
		{"OPTIONS", "/version", "good.example:2379", "http://a.example:8080"},
	}
	answer := func(p *testproc.Proc, r request) string {
		req, err := http.NewRequest(r.method, fmt.Sprintf("http://%s%s", p.ClientAddr(), r.path), nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.host != "" {
			req.Host = r.host
		}
		if r.origin != "" {
			req.Header.Set("Origin", r.origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "error: " + err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusOK {
			body = nil // version and health bodies are compared elsewhere
		}
		return fmt.Sprintf("%d origin=%q methods=%q body=%q", resp.StatusCode,
			resp.Header.Values("Access-Control-Allow-Origin"), resp.Header.Values("Access-Control-Allow-Methods"), body)
	}
	for _, flags := range [][]string{
		nil,
		{"--host-whitelist=good.example,127.0.0.1"},
		{"--cors=http://a.example:8080"},
		{"--host-whitelist=*", "--cors=*"},
	} {
		got := map[string][]string{}
		for _, kind := range []string{"etcd", "sett"} {
			opts := testproc.Options{ExtraArgs: append([]string{"--log-level=error"}, flags...)}
			p := startKind(t, kind, opts)
			for _, r := range requests {
				got[kind] = append(got[kind], answer(p, r))
			}
			p.Stop()
		}
		t.Logf("%v: %q", flags, got["sett"])
		for i, r := range requests {
			if got["etcd"][i] != got["sett"][i] {
				t.Errorf("%v %v:\netcd %s\nsett %s", flags, r, got["etcd"][i], got["sett"][i])
			}
		}
	}
}

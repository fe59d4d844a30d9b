package compat

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sett-dev/sett/internal/testproc"
)

// putHistogram is the KV/Put series of grpc_server_handling_seconds: its
// bucket bounds and its count, as /metrics shows them.
func putHistogram(t *testing.T, p *testproc.Proc) (buckets []string, count string) {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://%s/metrics", p.ClientAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	le := regexp.MustCompile(`le="([^"]+)"`)
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.Contains(line, `grpc_method="Put"`) || !strings.Contains(line, `grpc_service="etcdserverpb.KV"`) {
			continue
		}
		switch {
		case strings.HasPrefix(line, "grpc_server_handling_seconds_bucket{"):
			buckets = append(buckets, le.FindStringSubmatch(line)[1])
		case strings.HasPrefix(line, "grpc_server_handling_seconds_count{"):
			count = line[strings.LastIndex(line, " ")+1:]
		}
	}
	return buckets, count
}

// TestMetricsExtensive: --metrics=extensive adds grpc_server_handling_seconds
// with etcd's labels and buckets, observed once per call; the default
// (basic) does not export it; on etcd and sett alike.
func TestMetricsExtensive(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and sett")
	}
	for _, flags := range [][]string{{"--metrics=extensive"}, nil} {
		type seen struct {
			buckets []string
			count   string
		}
		got := map[string]seen{}
		for _, kind := range []string{"etcd", "sett"} {
			opts := testproc.Options{ExtraArgs: append([]string{"--log-level=error"}, flags...)}
			p := startKind(t, kind, opts)
			cli := testproc.Client(t, p)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			for i := range 3 {
				if _, err := cli.Put(ctx, fmt.Sprint("k", i), "v"); err != nil {
					t.Fatal(err)
				}
			}
			cancel()
			b, c := putHistogram(t, p)
			got[kind] = seen{b, c}
			p.Stop()
		}
		e, s := got["etcd"], got["sett"]
		if strings.Join(e.buckets, ",") != strings.Join(s.buckets, ",") || e.count != s.count {
			t.Errorf("%v: KV/Put handling histogram: etcd buckets %v count %q, sett buckets %v count %q", flags, e.buckets, e.count, s.buckets, s.count)
		}
		if want := len(flags) > 0; (s.count == "3") != want {
			t.Errorf("%v: sett KV/Put handling count %q", flags, s.count)
		}
	}
}

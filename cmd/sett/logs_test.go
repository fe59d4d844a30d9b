package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sett-dev/sett/internal/testproc"
)

// grepped are the log messages operators grep and alert on, with the JSON
// keys each line carries on etcd and must carry on sett too.
var grepped = []struct {
	msg  string // the line's msg, or a substring for raft's lines
	keys []string
}{
	{"ready to serve client requests", []string{"level", "ts", "caller", "msg"}},
	{"serving client traffic insecurely; this is strongly discouraged!", []string{"traffic", "address"}},
	{"published local member to cluster through raft", []string{"local-member-id", "local-member-attributes", "cluster-id", "publish-timeout"}},
	{"became leader at term", []string{"logger", "caller"}},
	{"elected leader", []string{"logger", "caller"}},
	{"added member", []string{"cluster-id", "local-member-id", "added-peer-id", "added-peer-peer-urls", "added-peer-is-learner"}},
	{"removed member", []string{"cluster-id", "local-member-id", "removed-remote-peer-id", "removed-remote-peer-urls"}},
	{"finished scheduled compaction", []string{"compact-revision", "took"}},
	{"defragmenting", []string{"current-db-size-bytes", "current-db-size-in-use-bytes"}},
	{"finished defragmenting directory", []string{"current-db-size-bytes-diff", "current-db-size-bytes", "took"}},
	{"notifying init daemon", nil},
	// Every apply is slow against the 1ns --warning-apply-duration below.
	{"apply request took too long", []string{"took", "expected-duration", "prefix", "request", "response"}},
	// And every unary call against --warning-unary-request-duration=1ns.
	// The flag below turns health to NOT_SERVING during the defrag; both
	// log the change, and the return to SERVING.
	{"grpc service status changed", []string{"service", "status"}},
	{"request stats", []string{"start time", "time spent", "remote", "response type", "request count", "request size", "response count", "response size", "request content"}},
}

// logLines parses zap JSON lines; other lines (etcdctl noise) are skipped.
func logLines(t *testing.T, text string) []map[string]any {
	var out []map[string]any
	for _, l := range strings.Split(text, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] != nil {
			out = append(out, m)
		}
	}
	return out
}

func findLine(lines []map[string]any, msg string) map[string]any {
	for _, m := range lines {
		s, _ := m["msg"].(string)
		if s == msg || (strings.Contains(msg, " ") && strings.Contains(s, msg) && m["logger"] == "raft") {
			return m
		}
	}
	return nil
}

// runLoggedEvents drives a member through the grepped events.
func runLoggedEvents(t *testing.T, p *testproc.Proc) {
	ep := p.ClientAddr()
	for _, args := range [][]string{{"put", "a", "1"}, {"put", "a", "2"}, {"compact", "2"}, {"defrag"}} {
		if out, err := testproc.Etcdctl(t, ep, args...); err != nil {
			t.Fatalf("%s: %v %s", p.Name, err, out)
		}
	}
	out, err := testproc.Etcdctl(t, ep, "member", "add", "x", "--learner", "--peer-urls=http://127.0.0.1:1", "-w", "json")
	if err != nil {
		t.Fatalf("%s: member add: %v %s", p.Name, err, out)
	}
	var added struct {
		Member struct {
			ID uint64 `json:"ID"`
		} `json:"member"`
	}
	if err := json.Unmarshal([]byte(out), &added); err != nil {
		t.Fatalf("%s: member add answer %q: %v", p.Name, out, err)
	}
	if out, err := testproc.Etcdctl(t, ep, "member", "remove", strings.TrimLeft(hex(added.Member.ID), "0")); err != nil {
		t.Fatalf("%s: member remove: %v %s", p.Name, err, out)
	}
}

func hex(v uint64) string {
	const digits = "0123456789abcdef"
	b := make([]byte, 16)
	for i := 15; i >= 0; i-- {
		b[i] = digits[v&15]
		v >>= 4
	}
	return string(b)
}

// waitFor polls path until it holds want or the deadline passes.
func waitFor(path, want string, d time.Duration) string {
	deadline := time.Now().Add(d)
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), want) || time.Now().After(deadline) {
			return string(b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// etcd and sett, started with the same --log-outputs=stdout,FILE and JSON,
// write each grepped message to both outputs, with etcd's keys.
func TestLogsMatchEtcdJSON(t *testing.T) {
	type run struct{ stdout, file []map[string]any }
	runs := map[string]run{}
	for _, kind := range []string{"etcd", "sett"} {
		file := filepath.Join(t.TempDir(), "member.log")
		opts := testproc.Options{ExtraArgs: []string{"--log-outputs=stdout," + file, "--log-format=json", "--log-level=info", "--warning-apply-duration=1ns", "--warning-unary-request-duration=1ns", "--experimental-stop-grpc-service-on-defrag"}}
		var p *testproc.Proc
		if kind == "etcd" {
			p = testproc.StartEtcd(t, opts)
		} else {
			p = testproc.StartSett(t, opts)
		}
		waitFor(file, "ready to serve client requests", 10*time.Second)
		runLoggedEvents(t, p)
		waitFor(file, "finished defragmenting directory", 5*time.Second)
		b, _ := os.ReadFile(file)
		runs[kind] = run{logLines(t, p.Logs()), logLines(t, string(b))}
		p.Stop()
	}
	for _, g := range grepped {
		for kind, r := range runs {
			for where, lines := range map[string][]map[string]any{"stdout": r.stdout, "file": r.file} {
				m := findLine(lines, g.msg)
				if m == nil {
					t.Errorf("%s: %q not in %s", kind, g.msg, where)
					continue
				}
				for _, k := range append([]string{"level", "ts", "msg"}, g.keys...) {
					if _, ok := m[k]; !ok {
						t.Errorf("%s %s: %q has no key %q: %v", kind, where, g.msg, k, m)
					}
				}
				ts, _ := m["ts"].(string)
				if _, err := time.Parse("2006-01-02T15:04:05.000000Z0700", ts); err != nil {
					t.Errorf("%s %s: ts %q not etcd's layout", kind, where, ts)
				}
				if lv := m["level"]; lv != "info" && lv != "warn" {
					t.Errorf("%s %s: %q level %v", kind, where, g.msg, lv)
				}
			}
		}
		if e, s := findLine(runs["etcd"].file, g.msg), findLine(runs["sett"].file, g.msg); e != nil && s != nil && e["level"] != s["level"] {
			t.Errorf("%q: etcd level %v, sett %v", g.msg, e["level"], s["level"])
		}
	}
	// The defragmentation's health change, in order: NOT_SERVING (warn,
	// with the reason), then SERVING.
	for kind, r := range runs {
		var seq []string
		for _, m := range r.file {
			if m["msg"] == "grpc service status changed" {
				seq = append(seq, fmt.Sprint(m["level"], " ", m["status"], " ", m["reason"]))
			}
		}
		if want := []string{"info SERVING <nil>", "warn NOT_SERVING defrag is active", "info SERVING <nil>"}; !slices.Equal(seq, want) {
			t.Errorf("%s: health changes %q, want %q", kind, seq, want)
		}
	}
}

// With --log-format=console both write zap's console line: ts, level,
// caller, msg separated by tabs.
func TestLogsMatchEtcdConsole(t *testing.T) {
	for _, kind := range []string{"etcd", "sett"} {
		file := filepath.Join(t.TempDir(), "member.log")
		opts := testproc.Options{ExtraArgs: []string{"--log-outputs=" + file, "--log-format=console"}}
		var p *testproc.Proc
		if kind == "etcd" {
			p = testproc.StartEtcd(t, opts)
		} else {
			p = testproc.StartSett(t, opts)
		}
		text := waitFor(file, "ready to serve client requests", 10*time.Second)
		p.Stop()
		var found bool
		for _, l := range strings.Split(text, "\n") {
			f := strings.Split(l, "\t")
			if len(f) >= 4 && f[3] == "ready to serve client requests" {
				found = true
				if _, err := time.Parse("2006-01-02T15:04:05.000000Z0700", f[0]); err != nil || f[1] != "info" || !strings.Contains(f[2], ".go:") {
					t.Errorf("%s: console line %q", kind, l)
				}
			}
		}
		if !found {
			t.Errorf("%s: no console ready line in %s:\n%s", kind, file, text)
		}
		if strings.Contains(p.Logs(), "ready to serve client requests") {
			t.Errorf("%s: logged to stderr although --log-outputs names only a file", kind)
		}
	}
}

package compat

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sett-dev/sett/internal/testproc"
)

// autoServer is one server of an auto-compaction test: its process, a
// client, and when each of its revisions was written.
type autoServer struct {
	kind    string
	proc    *testproc.Proc
	cli     *clientv3.Client
	kv      pb.KVClient
	started time.Time // before the process was launched

	mu      sync.Mutex
	written map[int64]time.Time
}

// startAutoPair starts etcd and sett, each a one-member cluster, with the
// same auto-compaction flags (and info logs, which carry the compactor's
// messages).
func startAutoPair(t *testing.T, args ...string) [2]*autoServer {
	t.Helper()
	var out [2]*autoServer
	for i, kind := range []string{"etcd", "sett"} {
		s := &autoServer{kind: kind, written: map[int64]time.Time{}, started: time.Now()}
		opts := testproc.Options{ExtraArgs: append([]string{"--log-level=info"}, args...)}
		if kind == "etcd" {
			s.proc = testproc.StartEtcd(t, opts)
		} else {
			s.proc = testproc.StartSett(t, opts)
		}
		s.cli = testproc.Client(t, s.proc)
		s.kv = pb.NewKVClient(s.cli.ActiveConnection())
		out[i] = s
	}
	for _, s := range out {
		waitServing(t, s)
	}
	return out
}

func waitServing(t *testing.T, s *autoServer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := s.kv.Range(ctx, &pb.RangeRequest{Key: []byte("ready")})
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not serving: %v", s.kind, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// put writes to both servers at once and records each one's revision.
func putBoth(t *testing.T, servers [2]*autoServer, key, val string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			resp, err := s.kv.Put(ctx, &pb.PutRequest{Key: []byte(key), Value: []byte(val)})
			if err != nil {
				errs[i] = err
				return
			}
			s.mu.Lock()
			s.written[resp.Header.Revision] = time.Now()
			s.mu.Unlock()
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s: put: %v", servers[i].kind, err)
		}
	}
}

const compactedMsg = "etcdserver: mvcc: required revision has been compacted"

// compactRev finds the server's compaction revision from outside: the
// lowest revision a range may still read (1 if nothing was compacted).
func compactRev(t *testing.T, s *autoServer) (compacted, current int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	head, err := s.kv.Range(ctx, &pb.RangeRequest{Key: []byte("k")})
	if err != nil {
		t.Fatalf("%s: range: %v", s.kind, err)
	}
	current = head.Header.Revision
	lo, hi := int64(1), current // the answer is in [lo, hi]
	for lo < hi {
		mid := (lo + hi) / 2
		_, err := s.kv.Range(ctx, &pb.RangeRequest{Key: []byte("k"), Revision: mid})
		switch {
		case err == nil:
			hi = mid
		case strings.Contains(err.Error(), compactedMsg):
			lo = mid + 1
		default:
			t.Fatalf("%s: range at %d: %v", s.kind, mid, err)
		}
	}
	return lo, current
}

// logLines are the server's JSON log lines with message msg.
func logLines(s *autoServer, msg string) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s.proc.Logs()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// fieldsOf are a log line's keys other than ts and caller, with the values
// of the given keys.
func fieldsOf(m map[string]any, values ...string) string {
	var keys []string
	for k := range m {
		if k != "ts" && k != "caller" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	out := strings.Join(keys, ",")
	for _, k := range values {
		out += " " + k + "=" + toString(m[k])
	}
	return out
}

func toString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return ""
}

// compareLogs requires both servers to have logged msg, with the same
// keys and the same values of the given keys.
func compareLogs(t *testing.T, servers [2]*autoServer, msg string, values ...string) {
	t.Helper()
	var got [2]string
	for i, s := range servers {
		lines := logLines(s, msg)
		if len(lines) == 0 {
			t.Errorf("%s logged no %q", s.kind, msg)
			return
		}
		got[i] = fieldsOf(lines[0], values...)
	}
	if got[0] != got[1] {
		t.Errorf("log %q: etcd %s, sett %s", msg, got[0], got[1])
	}
}

// With a periodic retention of 2s, both servers keep about one window of
// history: once warmed up, the compacted revision was always written 2 to
// about 4.4 seconds before (compactions every 2s, each to the revision
// sampled 2.2s before), and a range below it fails with etcd's error.
func TestAutoCompactionPeriodic(t *testing.T) {
	t.Parallel()
	servers := startAutoPair(t, "--auto-compaction-mode=periodic", "--auto-compaction-retention=2s")
	start := time.Now()
	var seen [2]map[int64]bool
	var ages [2][]time.Duration
	for i := range seen {
		seen[i] = map[int64]bool{}
	}
	observations := 0
	for n := 0; time.Since(start) < 11*time.Second; n++ {
		putBoth(t, servers, "k", strconv.Itoa(n))
		if n%4 != 3 || time.Since(start) < 6*time.Second {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		observations++
		for i, s := range servers {
			c, cur := compactRev(t, s)
			now := time.Now()
			s.mu.Lock()
			at, ok := s.written[c]
			s.mu.Unlock()
			if !ok {
				t.Fatalf("%s: compacted to revision %d (current %d), written before the test's writes, at %v",
					s.kind, c, cur, time.Since(start))
			}
			age := now.Sub(at)
			if age < 1800*time.Millisecond || age > 5*time.Second {
				t.Errorf("%s: at %v compacted to revision %d (current %d), written %v before; want 2s to 4.4s",
					s.kind, now.Sub(start).Round(time.Millisecond), c, cur, age.Round(time.Millisecond))
			}
			seen[i][c] = true
			ages[i] = append(ages[i], age.Round(10*time.Millisecond))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("age of the compacted revision: etcd %v, sett %v", ages[0], ages[1])
	for i, s := range servers {
		if len(seen[i]) < 2 {
			t.Errorf("%s: compaction points seen %v over %d observations; want it to advance", s.kind, seen[i], observations)
		}
	}
	var errs [2]string
	for i, s := range servers {
		_, err := s.kv.Range(context.Background(), &pb.RangeRequest{Key: []byte("k"), Revision: 2})
		if err != nil {
			errs[i] = err.Error()
		}
	}
	if errs[0] != errs[1] || !strings.Contains(errs[0], compactedMsg) {
		t.Errorf("range at revision 2: etcd %q, sett %q", errs[0], errs[1])
	}
	compareLogs(t, servers, "starting auto periodic compaction", "compact-period", "level")
	compareLogs(t, servers, "completed auto periodic compaction", "compact-period", "level")
}

// With --auto-compaction-mode=revision, both servers compact five minutes
// after the start to the current revision minus the retention, and not
// before.
func TestAutoCompactionRevision(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out etcd's 5-minute revision compaction interval")
	}
	t.Parallel()
	const keep = 10
	servers := startAutoPair(t, "--auto-compaction-mode=revision", "--auto-compaction-retention="+strconv.Itoa(keep))
	for n := range 40 {
		putBoth(t, servers, "k", strconv.Itoa(n))
	}
	var want [2]int64
	for i, s := range servers {
		c, cur := compactRev(t, s)
		if c != 1 {
			t.Fatalf("%s: compacted to %d at once", s.kind, c)
		}
		want[i] = cur - keep
	}
	if want[0] != want[1] {
		t.Fatalf("revisions differ: etcd %d, sett %d", want[0]+keep, want[1]+keep)
	}
	var at [2]time.Duration
	deadline := time.Now().Add(6 * time.Minute)
	for at[0] == 0 || at[1] == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("compacted after (etcd, sett) %v; not both within 6 minutes", at)
		}
		for i, s := range servers {
			if at[i] != 0 {
				continue
			}
			c, _ := compactRev(t, s)
			if c == 1 {
				continue
			}
			at[i] = time.Since(s.started)
			if c != want[i] {
				t.Errorf("%s: compacted to %d, want %d (current - %d)", s.kind, c, want[i], keep)
			}
		}
		time.Sleep(time.Second)
	}
	for i, s := range servers {
		if at[i] < 5*time.Minute || at[i] > 5*time.Minute+20*time.Second {
			t.Errorf("%s: compacted %v after its launch; want 5m (etcd's interval)", s.kind, at[i])
		}
	}
	t.Logf("compacted after launch: etcd %v, sett %v", at[0].Round(time.Second), at[1].Round(time.Second))
	compareLogs(t, servers, "starting auto revision compaction", "revision", "revision-compaction-retention", "level")
	compareLogs(t, servers, "completed auto revision compaction", "revision", "revision-compaction-retention", "level")
}

// A bad mode or retention stops both servers at start with the same error
// and a non-zero exit status (1, etcd's).
func TestAutoCompactionFlagErrors(t *testing.T) {
	t.Parallel()
	etcd, sett := testproc.EnsureBinary(t, "etcd"), testproc.BuildSett(t)
	for _, args := range [][]string{
		{"--auto-compaction-mode=foo"},
		{"--auto-compaction-mode="},
		{"--auto-compaction-retention=abc"},
		{"--auto-compaction-mode=revision", "--auto-compaction-retention=abc"},
		{"--auto-compaction-retention=-1"},
		{"--auto-compaction-mode=revision", "--auto-compaction-retention=1.5"},
		{"--auto-compaction-mode=foo", "--auto-compaction-retention=abc"},
	} {
		var errText [2]string
		for i, bin := range []string{etcd, sett} {
			code, stderr := runToExit(t, bin, args)
			if code != 1 {
				t.Errorf("%s %v: exit status %d, want 1\n%s", filepath.Base(bin), args, code, stderr)
			}
			errText[i] = stderr
		}
		want := etcdFatalError(errText[0])
		if want == "" {
			t.Errorf("%v: etcd's stderr has no error field:\n%s", args, errText[0])
			continue
		}
		if !strings.Contains(errText[1], want) {
			t.Errorf("%v: sett's stderr lacks etcd's error %q:\n%s", args, want, errText[1])
		}
	}
}

// runToExit runs a server with args on fresh ports and data dir and
// returns its exit status and stderr; it must exit within 20 seconds.
func runToExit(t *testing.T, bin string, args []string) (int, string) {
	t.Helper()
	ports := testproc.FreePorts(t, 2)
	client := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peer := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--data-dir=" + filepath.Join(t.TempDir(), "data"),
		"--listen-client-urls=" + client, "--advertise-client-urls=" + client,
		"--listen-peer-urls=" + peer, "--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=default=" + peer}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %v still running after 20s: the bad flag was accepted\n%s", bin, args, stderr.String())
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), stderr.String()
	}
	if err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	return 0, stderr.String()
}

// etcdFatalError is the error of the warn or fatal line that stopped etcd.
func etcdFatalError(stderr string) string {
	for _, line := range strings.Split(stderr, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		if e, ok := m["error"].(string); ok && (m["level"] == "fatal" || m["msg"] == "failed to verify flags") {
			return e
		}
	}
	return ""
}

package compat

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	chkReCompactRev = regexp.MustCompile(`with revision [0-9]+`)
	// The progress bar check perf and check datascale draw on stderr.
	chkReBar = regexp.MustCompile(`[0-9]+ / [0-9]+ \[[^\]]*\] *[0-9.]+% *(\?|[0-9.]+) p/s *`)
	// Measurements, and the verdicts that depend on them (how fast the
	// shared test machine is): the shape of the report is compared, not
	// the figures.
	chkReVerdicts = []struct {
		re   *regexp.Regexp
		repl string
	}{
		{regexp.MustCompile(`(?m)^(PASS: Throughput is|FAIL: Throughput too low:) [0-9]+ writes/s$`), "<verdict> throughput <n> writes/s"},
		{regexp.MustCompile(`(?m)^(PASS: Slowest request took|Slowest request took too long:) [0-9.]+s$`), "<verdict> slowest request <seconds>"},
		{regexp.MustCompile(`(?m)^(PASS: Stddev is|Stddev too high:) [0-9.]+s$`), "<verdict> stddev <seconds>"},
		{regexp.MustCompile(`(?m)^(PASS|FAIL)$`), "<verdict>"},
		{regexp.MustCompile(`(?m)^PASS: Approximate system memory used : -?[0-9.]+ MB\.$`), "PASS: Approximate system memory used : <n> MB."},
		{regexp.MustCompile(`(?m)^FAIL: ERROR\((.*)\) -> [0-9]+$`), "FAIL: ERROR($1) -> <n>"},
	}
)

// chkNormalize reduces check perf/datascale output to its shape. A run
// that failed only on a measurement exits 1; that exit code counts as 0.
func chkNormalize(s *etcdctlSide, r etcdctlResult) etcdctlResult {
	out := s.normalize(r.stdout)
	for _, v := range chkReVerdicts {
		out = v.re.ReplaceAllString(out, v.repl)
	}
	if r.code == 1 && strings.HasSuffix(out, "<verdict>\n") && !strings.Contains(out, "ERROR") {
		r.code = 0
	}
	return etcdctlResult{stdout: out, stderr: chkReBar.ReplaceAllString(s.normalize(r.stderr), ""), code: r.code}
}

// checkScript: etcdctl check datascale and check perf at the small load,
// their refusals, and what they leave behind. check perf runs for a
// minute unless interrupted: it is interrupted (as Ctrl-C does, which
// makes it report on what it did so far) after interrupt.
var checkScript = []struct {
	args      []string
	interrupt time.Duration
}{
	{args: []string{"check", "perf", "--load=nonsense"}},
	{args: []string{"check", "datascale", "--load=nonsense"}},
	{args: []string{"put", "/busy/k", "v"}},
	{args: []string{"check", "perf", "--load=s", "--prefix=/busy/"}},
	{args: []string{"check", "datascale", "--load=s", "--prefix=/busy/"}},
	{args: []string{"check", "datascale", "--load=s", "--auto-compact", "--auto-defrag"}},
	{args: []string{"get", "/etcdctl-check-datascale/", "--prefix", "--count-only", "-w", "fields"}},
	{args: []string{"check", "perf", "--load=s"}, interrupt: 8 * time.Second},
	{args: []string{"check", "perf", "--load=small", "--prefix=/other-perf/", "--auto-compact"}, interrupt: 5 * time.Second},
	{args: []string{"get", "", "--prefix", "--keys-only"}}, // the revision after check perf is timing
}

// TestCheckEtcdctl runs etcdctl check perf and check datascale against
// etcd and sett at the same time and compares the shape of their reports
// (lines, verdict positions, exit codes, error lists) with the measured
// figures normalized, and what they leave in the store.
func TestCheckEtcdctl(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and sett")
	}
	t.Parallel() // mostly waiting on the servers: overlaps with the other parallel etcdctl suites
	bin, sides := startSides(t)
	for i, c := range checkScript {
		args := c.args
		t.Run(fmt.Sprintf("%02d %s", i, strings.Join(args, " ")), func(t *testing.T) {
			var res [2]etcdctlResult
			var errs [2]error
			var wg sync.WaitGroup
			for j, s := range sides {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if c.interrupt == 0 {
						res[j], errs[j] = runEtcdctlFor(3*time.Minute, bin, s.endpoint, args, "")
						return
					}
					b := startBg(t, bin, s.endpoint, args)
					time.Sleep(c.interrupt)
					res[j] = b.interrupt()
				}()
			}
			wg.Wait()
			var got [2]etcdctlResult
			for j, s := range sides {
				if errs[j] != nil {
					t.Fatalf("%s: %v", s.name, errs[j])
				}
				got[j] = chkNormalize(s, res[j])
				if c.interrupt != 0 {
					// How many keys it wrote, hence its revision, is timing.
					got[j].stdout = chkReCompactRev.ReplaceAllString(got[j].stdout, "with revision <n>")
				}
			}
			if args[0] == "check" && (res[0].code == 0 || res[0].code == 1) {
				t.Logf("etcd:\n%s\nsett:\n%s", strings.TrimSpace(res[0].stdout), strings.TrimSpace(res[1].stdout))
			}
			recordCtl(args, got[0] == got[1])
			if got[0] != got[1] {
				t.Errorf("etcdctl %s\n===== etcd =====\n%s===== sett =====\n%s", strings.Join(args, " "), got[0], got[1])
			} else if *etcdctlDump {
				t.Logf("etcdctl %s\n%s", strings.Join(args, " "), got[0])
			}
		})
	}
}

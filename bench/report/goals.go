package main

import "fmt"

// Server names the script uses. The goals compare sett with etcd, with the
// ceiling (bench/ceiling: the same gRPC KV service with no storage) and
// with the machine's own limits.
const (
	subject  = "sett"
	baseline = "etcd"
	ceiling  = "ceiling"
	machine  = "machine"
)

// Figure ids the goals and plots read; bench/run.sh writes them.
const (
	figPut1         = "put1"
	figPut100       = "put100"
	figPut1000      = "put1000"
	figRangeS       = "range_s"
	figRangeL       = "range_l"
	figWatchLatency = "watch_latency"
	figLoad         = "load"
	figLoadBig      = "load_big"
	figLoadHuge     = "load_huge"
	figFsync        = "fsync"
	metricFsync     = "overwrite" // 4 KiB over already written blocks
)

// PhysicalLimit is the best possible rate of one client writing one key
// at a time: each put costs at least one round trip (the ceiling's
// 1-client put, whose mean latency is 1/throughput) plus one fsync of a
// small write.
func PhysicalLimit(t *Table) (float64, bool) {
	c, ok1 := t.Get(figPut1, "throughput", ceiling)
	f, ok2 := t.Get(figFsync, metricFsync, machine)
	if !ok1 || !ok2 || c.Median <= 0 {
		return 0, false
	}
	return 1 / (1/c.Median + f.Median/1000), true
}

// Goal is a target of issue #10. The report states whether each is met;
// the benchmark never fails on them.
type Goal struct {
	Name    string
	Target  string
	Limit   float64 // the measured ratio must be >= Limit, or <= if AtMost
	AtMost  bool
	Percent bool // show the ratio as a percentage
	// Ratio computes the measured ratio; ok is false when a figure it
	// needs was not measured.
	Ratio func(*Table) (float64, bool)
	// Missing says what to run when Ratio is not ok.
	Missing string
}

// GoalResult is a goal as measured.
type GoalResult struct {
	Goal
	Value    float64
	Measured bool
	Met      bool
}

func ratioTo(figure, metric, other string) func(*Table) (float64, bool) {
	return func(t *Table) (float64, bool) { return t.Ratio(figure, metric, subject, other) }
}

// Goals are issue #10's targets, in report order.
var Goals = []Goal{
	{
		Name: "put, 100 clients/10 conns", Target: "≥ 85% of the ceiling",
		Limit: 0.85, Percent: true, Ratio: ratioTo(figPut100, "throughput", ceiling),
		Missing: "needs sett and ceiling in SERVERS",
	},
	{
		Name: "put, 1 client/1 conn", Target: "≥ 90% of the physical limit (1 round trip + 1 fsync)",
		Limit: 0.90, Percent: true,
		Ratio: func(t *Table) (float64, bool) {
			lim, ok := PhysicalLimit(t)
			s, ok2 := t.Get(figPut1, "throughput", subject)
			if !ok || !ok2 || lim == 0 {
				return 0, false
			}
			return s.Median / lim, true
		},
		Missing: "needs sett and ceiling in SERVERS and the fsync measurement",
	},
	{
		Name: "range serializable", Target: "≥ 95% of the ceiling",
		Limit: 0.95, Percent: true, Ratio: ratioTo(figRangeS, "throughput", ceiling),
		Missing: "needs sett and ceiling in SERVERS",
	},
	{
		Name: "range linearizable", Target: "≥ 90% of the ceiling",
		Limit: 0.90, Percent: true, Ratio: ratioTo(figRangeL, "throughput", ceiling),
		Missing: "needs sett and ceiling in SERVERS",
	},
	{
		Name: "watch latency p99", Target: "≤ ¼ of etcd's",
		Limit: 0.25, AtMost: true, Ratio: ratioTo(figWatchLatency, "p99", baseline),
		Missing: "needs etcd and sett in SERVERS",
	},
	{
		Name: "RSS after loading 1M keys", Target: "≤ 0.4× etcd's",
		Limit: 0.4, AtMost: true,
		Ratio: func(t *Table) (float64, bool) {
			if !loadedKeys(t, figLoadBig, 1e6) {
				return 0, false
			}
			return t.Ratio(figLoadBig, "rss", subject, baseline)
		},
		Missing: "needs etcd and sett in SERVERS and BIG_KEYS=1000000",
	},
	{
		Name: "RSS from 1M to 5M keys", Target: "nearly flat (≤ 1.25× the RSS at 1M)",
		Limit: 1.25, AtMost: true,
		Ratio: func(t *Table) (float64, bool) {
			if !loadedKeys(t, figLoadBig, 1e6) || !loadedKeys(t, figLoadHuge, 5e6) {
				return 0, false
			}
			huge, ok1 := t.Get(figLoadHuge, "rss", subject)
			big, ok2 := t.Get(figLoadBig, "rss", subject)
			if !ok1 || !ok2 || big.Median == 0 {
				return 0, false
			}
			return huge.Median / big.Median, true
		},
		Missing: "long mode only: BENCH_LONG=1 (BIG_KEYS=1000000, HUGE_KEYS=5000000)",
	},
}

// EvaluateGoals measures every goal against the table.
func EvaluateGoals(t *Table, goals []Goal) []GoalResult {
	out := make([]GoalResult, 0, len(goals))
	for _, g := range goals {
		r := GoalResult{Goal: g}
		r.Value, r.Measured = g.Ratio(t)
		if r.Measured {
			if g.AtMost {
				r.Met = r.Value <= g.Limit
			} else {
				r.Met = r.Value >= g.Limit
			}
		}
		out = append(out, r)
	}
	return out
}

// FormatValue renders a goal's measured ratio.
func (r GoalResult) FormatValue() string {
	if !r.Measured {
		return "not measured"
	}
	if r.Percent {
		return fmt.Sprintf("%.0f%%", r.Value*100)
	}
	return fmt.Sprintf("%.2f×", r.Value)
}

// Verdict renders whether the goal is met.
func (r GoalResult) Verdict() string {
	switch {
	case !r.Measured:
		return r.Missing
	case r.Met:
		return "met"
	default:
		return "not met"
	}
}

// loadedKeys reports whether sett's load figure holds exactly keys keys:
// the goals about 1M and 5M keys say nothing at other sizes.
func loadedKeys(t *Table, figure string, keys float64) bool {
	s, ok := t.Get(figure, "keys", subject)
	return ok && s.Median == keys
}

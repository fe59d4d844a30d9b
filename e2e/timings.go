package e2e

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// Timings accumulate the wall time of each workload phase, in the order
// phases first ran.
type Timings struct {
	mu    sync.Mutex
	order []string
	total map[string]time.Duration
	runs  map[string]int
}

// NewTimings returns empty timings.
func NewTimings() *Timings {
	return &Timings{total: map[string]time.Duration{}, runs: map[string]int{}}
}

// Time runs f as one run of phase and records how long it took.
func (t *Timings) Time(phase string, f func() error) error {
	start := time.Now()
	err := f()
	t.Add(phase, time.Since(start))
	return err
}

// Add records one run of phase.
func (t *Timings) Add(phase string, d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.runs[phase]; !ok {
		t.order = append(t.order, phase)
	}
	t.total[phase] += d
	t.runs[phase]++
}

// Mean is the average duration of one run of phase (0 if it never ran).
func (t *Timings) Mean(phase string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.runs[phase] == 0 {
		return 0
	}
	return t.total[phase] / time.Duration(t.runs[phase])
}

// Runs is how many times phase ran.
func (t *Timings) Runs(phase string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.runs[phase]
}

// Phases lists the phases in first-run order.
func (t *Timings) Phases() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.order...)
}

// TimingTable compares the mean phase durations of two runs of the same
// workload as a Markdown table: phase, base, other, other/base.
func TimingTable(baseName string, base *Timings, otherName string, other *Timings) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| phase | runs | %s | %s | %s/%s |\n|---|---:|---:|---:|---:|\n", baseName, otherName, otherName, baseName)
	seen := map[string]bool{}
	phases := append(base.Phases(), other.Phases()...)
	for _, p := range phases {
		if seen[p] {
			continue
		}
		seen[p] = true
		bm, om := base.Mean(p), other.Mean(p)
		ratio := "-"
		if bm > 0 && om > 0 {
			ratio = fmt.Sprintf("%.2f", float64(om)/float64(bm))
		}
		fmt.Fprintf(&b, "| %s | %d/%d | %s | %s | %s |\n", p, base.Runs(p), other.Runs(p), fmtDuration(bm), fmtDuration(om), ratio)
	}
	return b.String()
}

func fmtDuration(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	if d < 10*time.Second {
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

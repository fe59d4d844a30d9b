package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// FormatNumber renders a value for the Markdown report: MiB with one
// decimal, counts and rates as integers, other values (latencies) with
// about three significant digits.
func FormatNumber(x float64, unit string) string {
	a := math.Abs(x)
	switch {
	case unit == "MiB":
		return fmt.Sprintf("%.1f", x)
	case unit == "count" || a >= 100:
		return fmt.Sprintf("%.0f", x)
	case a >= 10:
		return fmt.Sprintf("%.1f", x)
	case a >= 1:
		return fmt.Sprintf("%.2f", x)
	default:
		return fmt.Sprintf("%.3f", x)
	}
}

// FormatSummary renders "median (min–max)", or just the median for a
// single run.
func FormatSummary(s Summary, unit string) string {
	med := FormatNumber(s.Median, unit)
	if s.N <= 1 {
		return med
	}
	return fmt.Sprintf("%s (%s–%s)", med, FormatNumber(s.Min, unit), FormatNumber(s.Max, unit))
}

// percentileMetrics are the latency percentiles etcd's benchmark tool
// prints, as metric names, in order.
var percentileMetrics = []string{"p10", "p25", "p50", "p75", "p90", "p95", "p99", "p99.9"}

// percentileOf returns the percentile a metric name stands for.
func percentileOf(metric string) (float64, bool) {
	if !strings.HasPrefix(metric, "p") {
		return 0, false
	}
	p, err := strconv.ParseFloat(metric[1:], 64)
	if err != nil || p <= 0 || p >= 100 {
		return 0, false
	}
	return p, true
}

// metricNames are how the report names a figure's non-latency metrics.
var metricNames = map[string]string{
	"throughput": "",
	"rss":        "RSS",
	"rss_peak":   "peak RSS",
	"disk":       "data dir, apparent size (du -sb)",
	"disk_alloc": "data dir, allocated on disk (du -s)",
	"startup":    "start to first linearizable Get",
	"failed":     "FAILED requests",
	"overwrite":  "over already written blocks",
	"append":     "appending to the file",
}

// RowName is the report's name of a row: the figure's label, the metric
// and the unit.
func RowName(label, metric, unit string) string {
	if _, ok := percentileOf(metric); ok {
		return fmt.Sprintf("%s %s (%s)", label, metric, unit)
	}
	name, ok := metricNames[metric]
	if !ok {
		name = metric
	}
	if name == "" {
		return fmt.Sprintf("%s (%s)", label, unit)
	}
	return fmt.Sprintf("%s: %s (%s)", label, name, unit)
}

// shownInTable reports whether a metric gets a row in the Markdown
// tables; every metric is in the CSV.
func shownInTable(metric string) bool {
	if metric == "keys" {
		return false // the label says it
	}
	if _, ok := percentileOf(metric); ok {
		return metric == "p50" || metric == "p99"
	}
	return true
}

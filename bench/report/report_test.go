package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSummarize(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want Summary
	}{
		{"none", nil, Summary{}},
		{"one", []float64{7}, Summary{7, 7, 7, 1}},
		{"odd, unsorted", []float64{5, 1, 3}, Summary{3, 1, 5, 3}},
		{"even: mean of the middle two", []float64{4, 1, 10, 2}, Summary{3, 1, 10, 4}},
		{"duplicates", []float64{2, 2, 9}, Summary{2, 2, 9, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]float64(nil), tt.in...)
			if got := Summarize(in); got != tt.want {
				t.Errorf("Summarize(%v) = %+v, want %+v", tt.in, got, tt.want)
			}
			for i := range in {
				if in[i] != tt.in[i] {
					t.Fatalf("Summarize reordered its input: %v", in)
				}
			}
		})
	}
}

func TestParseResults(t *testing.T) {
	good := "put1\tthroughput\treq/s\tetcd\t1\t1618.5\n\nput1\tp99\tms\tsett\t2\t1.28\n"
	ms, err := ParseResults(strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	want := []Measurement{
		{"put1", "throughput", "req/s", "etcd", 1, 1618.5},
		{"put1", "p99", "ms", "sett", 2, 1.28},
	}
	if len(ms) != len(want) || ms[0] != want[0] || ms[1] != want[1] {
		t.Fatalf("got %+v, want %+v", ms, want)
	}

	bad := []struct{ name, in string }{
		{"too few fields", "put1\tthroughput\treq/s\tetcd\t1\n"},
		{"too many fields", "put1\tthroughput\treq/s\tetcd\t1\t2\t3\n"},
		{"value not a number", "put1\tthroughput\treq/s\tetcd\t1\tfast\n"},
		{"repeat not a number", "put1\tthroughput\treq/s\tetcd\tx\t1\n"},
		{"empty server", "put1\tthroughput\treq/s\t\t1\t1\n"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseResults(strings.NewReader(tt.in)); err == nil {
				t.Errorf("ParseResults(%q) accepted it", tt.in)
			}
		})
	}
}

func TestParseLabels(t *testing.T) {
	figs, err := ParseLabels(strings.NewReader("b\tsecond\na\tfirst, old\n\na\tfirst\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Figure{{"b", "second"}, {"a", "first"}}
	if len(figs) != 2 || figs[0] != want[0] || figs[1] != want[1] {
		t.Fatalf("got %+v, want %+v", figs, want)
	}
	if _, err := ParseLabels(strings.NewReader("no tab here\n")); err == nil {
		t.Error("a line without a tab was accepted")
	}
	meta, err := ParseMeta(strings.NewReader("Machine\t2 CPUs\tx\n"))
	if err != nil || len(meta) != 1 || meta[0] != (MetaLine{"Machine", "2 CPUs\tx"}) {
		t.Errorf("ParseMeta = %+v, %v", meta, err)
	}
}

func m(fig, metric, unit, srv string, rep int, v float64) Measurement {
	return Measurement{fig, metric, unit, srv, rep, v}
}

func TestNewTableOrderAndUnits(t *testing.T) {
	ms := []Measurement{
		m("extra", "throughput", "req/s", "sett", 1, 1),
		m("b", "p50", "ms", "etcd", 1, 2),
		m("b", "throughput", "req/s", "etcd", 1, 3),
		m("a", "rss", "MiB", "sett", 1, 4),
		m("b", "p50", "ms", "sett", 1, 5),
	}
	tab := NewTable(ms, []Figure{{"a", "A"}, {"b", "B"}, {"unused", "U"}})
	want := []Key{{"a", "rss"}, {"b", "p50"}, {"b", "throughput"}, {"extra", "throughput"}}
	if len(tab.Rows) != len(want) {
		t.Fatalf("rows %v, want %v", tab.Rows, want)
	}
	for i := range want {
		if tab.Rows[i] != want[i] {
			t.Fatalf("rows %v, want %v", tab.Rows, want)
		}
	}
	if u := tab.Units[Key{"a", "rss"}]; u != "MiB" {
		t.Errorf("unit %q, want MiB", u)
	}
	if strings.Join(tab.Servers, " ") != "sett etcd" {
		t.Errorf("servers %v, want [sett etcd]", tab.Servers)
	}
	if _, ok := tab.Get("a", "rss", "etcd"); ok {
		t.Error("Get found a value etcd never had")
	}
	if r, ok := tab.Ratio("b", "p50", "sett", "etcd"); !ok || r != 2.5 {
		t.Errorf("Ratio = %v, %v; want 2.5", r, ok)
	}
}

// goalMeasurements meet or miss every goal on purpose.
func goalMeasurements(meet bool) []Measurement {
	f := 1.0
	if !meet {
		f = 0.5
	}
	return []Measurement{
		m("put100", "throughput", "req/s", "ceiling", 1, 10000),
		m("put100", "throughput", "req/s", "sett", 1, 9000*f), // 90% / 45%
		m("put1", "throughput", "req/s", "ceiling", 1, 10000), // 0.1 ms round trip
		m("fsync", "overwrite", "ms", "machine", 1, 0.9),      // + 0.9 ms: limit 1000 req/s
		m("put1", "throughput", "req/s", "sett", 1, 950*f),
		m("range_s", "throughput", "req/s", "ceiling", 1, 20000),
		m("range_s", "throughput", "req/s", "sett", 1, 19500*f),
		m("range_l", "throughput", "req/s", "ceiling", 1, 20000),
		m("range_l", "throughput", "req/s", "sett", 1, 18500*f),
		m("watch_latency", "p99", "ms", "etcd", 1, 10),
		m("watch_latency", "p99", "ms", "sett", 1, 2/f), // 0.2× / 0.4×
		m("load_big", "rss", "MiB", "etcd", 1, 500),
		m("load_big", "rss", "MiB", "sett", 1, 150/f),
		m("load_huge", "rss", "MiB", "sett", 1, 160/f/f),
		m("load_big", "keys", "count", "sett", 1, 1e6),
		m("load_huge", "keys", "count", "sett", 1, 5e6),
	}
}

func TestEvaluateGoals(t *testing.T) {
	wantMet := map[string]float64{
		"put, 100 clients/10 conns": 0.9,
		"put, 1 client/1 conn":      0.95,
		"range serializable":        0.975,
		"range linearizable":        0.925,
		"watch latency p99":         0.2,
		"RSS after loading 1M keys": 0.3,
		"RSS from 1M to 5M keys":    160.0 / 150,
	}
	for _, meet := range []bool{true, false} {
		res := EvaluateGoals(NewTable(goalMeasurements(meet), nil), Goals)
		if len(res) != len(Goals) {
			t.Fatalf("%d results for %d goals", len(res), len(Goals))
		}
		for _, r := range res {
			if !r.Measured {
				t.Errorf("%s: not measured", r.Name)
				continue
			}
			if r.Met != meet {
				t.Errorf("meet=%v: %s: value %v, met %v", meet, r.Name, r.Value, r.Met)
			}
			if want, ok := wantMet[r.Name]; meet && (!ok || math.Abs(r.Value-want) > 1e-9) {
				t.Errorf("%s: value %v, want %v", r.Name, r.Value, want)
			}
		}
	}
	// The memory goals are about 1M and 5M keys; a smaller load is not
	// evidence either way.
	small := goalMeasurements(true)
	for i := range small {
		if small[i].Metric == "keys" {
			small[i].Value /= 10
		}
	}
	for _, r := range EvaluateGoals(NewTable(small, nil), Goals) {
		if strings.HasPrefix(r.Name, "RSS") && r.Measured {
			t.Errorf("%s measured on a load of a tenth of the keys", r.Name)
		}
	}
	for _, r := range EvaluateGoals(NewTable(nil, nil), Goals) {
		if r.Measured || r.Verdict() != r.Missing || r.FormatValue() != "not measured" {
			t.Errorf("%s on no data: measured %v, verdict %q", r.Name, r.Measured, r.Verdict())
		}
	}
}

func TestPhysicalLimit(t *testing.T) {
	tab := NewTable(goalMeasurements(true), nil)
	lim, ok := PhysicalLimit(tab)
	if !ok || math.Abs(lim-1000) > 1e-6 {
		t.Errorf("PhysicalLimit = %v, %v; want 1000", lim, ok)
	}
	if _, ok := PhysicalLimit(NewTable(goalMeasurements(true)[:3], nil)); ok {
		t.Error("PhysicalLimit without an fsync measurement")
	}
}

func TestColumns(t *testing.T) {
	ms := []Measurement{m("x", "throughput", "req/s", "ceiling", 1, 1), m("x", "throughput", "req/s", "sett", 1, 1),
		m("x", "throughput", "req/s", "etcd", 1, 1), m("fsync", "append", "ms", "machine", 1, 1)}
	tab := NewTable(ms, nil)
	tests := []struct {
		wanted      string
		wantServers string
		wantRatios  string
	}{
		{"etcd sett ceiling", "etcd sett ceiling", "sett/etcd sett/ceiling"},
		{"ceiling sett etcd", "sett etcd ceiling", "etcd/sett etcd/ceiling"},
		{"etcd sett", "etcd sett", "sett/etcd"},
		{"sett ceiling", "sett ceiling", "sett/ceiling"},
		{"etcd sett ceiling nobody machine", "etcd sett ceiling", "sett/etcd sett/ceiling"},
	}
	for _, tt := range tests {
		servers, ratios := Columns(tab, strings.Fields(tt.wanted))
		var rs []string
		for _, r := range ratios {
			rs = append(rs, r.Of+"/"+r.Over)
		}
		if got := strings.Join(servers, " "); got != tt.wantServers {
			t.Errorf("Columns(%q) servers %q, want %q", tt.wanted, got, tt.wantServers)
		}
		if got := strings.Join(rs, " "); got != tt.wantRatios {
			t.Errorf("Columns(%q) ratios %q, want %q", tt.wanted, got, tt.wantRatios)
		}
	}
}

func TestFormatting(t *testing.T) {
	nums := []struct {
		x    float64
		unit string
		want string
	}{
		{12494.4, "req/s", "12494"},
		{24.83, "ms", "24.8"},
		{1.284, "ms", "1.28"},
		{0.4704, "ms", "0.470"},
		{174.25, "MiB", "174.2"},
		{3, "count", "3"},
	}
	for _, n := range nums {
		if got := FormatNumber(n.x, n.unit); got != n.want {
			t.Errorf("FormatNumber(%v, %q) = %q, want %q", n.x, n.unit, got, n.want)
		}
	}
	if got := FormatSummary(Summary{9.03, 8.64, 9.42, 2}, "ms"); got != "9.03 (8.64–9.42)" {
		t.Errorf("FormatSummary = %q", got)
	}
	if got := FormatSummary(Summary{9.03, 9.03, 9.03, 1}, "ms"); got != "9.03" {
		t.Errorf("FormatSummary of one run = %q", got)
	}
	rows := []struct{ label, metric, unit, want string }{
		{"put, 1 client/1 conn", "throughput", "req/s", "put, 1 client/1 conn (req/s)"},
		{"put, 1 client/1 conn", "p99", "ms", "put, 1 client/1 conn p99 (ms)"},
		{"load 1000000 keys", "rss", "MiB", "load 1000000 keys: RSS (MiB)"},
		{"x", "weird", "u", "x: weird (u)"},
	}
	for _, r := range rows {
		if got := RowName(r.label, r.metric, r.unit); got != r.want {
			t.Errorf("RowName(%q, %q) = %q, want %q", r.label, r.metric, got, r.want)
		}
	}
}

func TestBuildPlots(t *testing.T) {
	ms := []Measurement{
		m("put1", "throughput", "req/s", "etcd", 1, 1000),
		m("put100", "throughput", "req/s", "etcd", 1, 9000),
		m("put100", "throughput", "req/s", "etcd", 2, 11000),
		m("put1000", "throughput", "req/s", "etcd", 1, 12000),
		m("put100", "throughput", "req/s", "sett", 1, 12000),
		m("put100", "p50", "ms", "etcd", 1, 8),
		m("put100", "p99", "ms", "etcd", 1, 20),
		m("watch_latency", "p50", "ms", "sett", 1, 0), // before the put's response
		m("watch_latency", "p99", "ms", "sett", 1, 3),
		m("load", "keys", "count", "sett", 1, 100000),
		m("load", "rss", "MiB", "sett", 1, 170),
		m("load_big", "keys", "count", "sett", 1, 1000000),
		m("load_big", "rss", "MiB", "sett", 1, 190),
	}
	spec := BuildPlots(NewTable(ms, nil), map[string]string{"put100": "put 100"}, []string{"etcd", "sett"})
	files := map[string]PlotFile{}
	for _, f := range spec.Files {
		files[f.File] = f
	}
	if len(files) != 3 {
		t.Fatalf("plot files %v, want 3", spec.Files)
	}

	thr := files[plotThroughput].Panels[0]
	if len(thr.Series) != 2 || thr.Series[0].Name != "etcd" || len(thr.Series[0].Points) != 3 {
		t.Fatalf("throughput series %+v", thr.Series)
	}
	if p := thr.Series[0].Points[1]; p != (Point{100, 10000, 9000, 11000}) {
		t.Errorf("etcd at 100 clients: %+v, want median 10000 in 9000–11000", p)
	}

	lat := files[plotLatency].Panels
	if len(lat) != 2 || lat[0].Title != "put 100" || !lat[0].LogY {
		t.Fatalf("latency panels %+v", lat)
	}
	if p := lat[0].Series[0].Points; len(p) != 2 || math.Abs(p[0].X-math.Log10(2)) > 1e-9 || math.Abs(p[1].X-2) > 1e-9 {
		t.Errorf("put 100 points %+v, want p50 at log10(2) and p99 at 2", p)
	}
	if p := lat[1].Series[0].Points; len(p) != 1 || p[0].Y != 3 {
		t.Errorf("watch points %+v: the zero p50 must be left off the log axis", p)
	}

	rss := files[plotRSS].Panels[0]
	if len(rss.Series) != 1 || len(rss.Series[0].Points) != 2 || rss.Series[0].Points[1].X != 1e6 {
		t.Errorf("rss series %+v", rss.Series)
	}
	if len(rss.XTicks) != 2 || rss.XTicks[0].Label != "100k" || rss.XTicks[1].Label != "1M" {
		t.Errorf("rss ticks %+v", rss.XTicks)
	}
}

func TestWriteMarkdownAndCSV(t *testing.T) {
	ms := append(goalMeasurements(true),
		m("put1", "throughput", "req/s", "etcd", 1, 800),
		m("put1", "throughput", "req/s", "etcd", 2, 900),
		m("put1", "p10", "ms", "etcd", 1, 0.4),
		m("fsync", "append", "ms", "machine", 1, 2.5),
	)
	labels := map[string]string{"put1": "put, 1 client/1 conn", "fsync": "4 KiB write + fdatasync"}
	tab := NewTable(ms, nil)
	servers, ratios := Columns(tab, []string{"etcd", "sett", "ceiling"})
	rep := &Report{
		Title: "T", Meta: []MetaLine{{"Machine", "2 CPUs"}}, Table: tab, Labels: labels,
		Servers: servers, Ratios: ratios, Goals: EvaluateGoals(tab, Goals),
		Images: []PlotFile{{File: "a.png", Title: "A"}},
		E2E:    "# Timings\n\n| step | s |\n|---|---|\n| create | 1 |\n", E2EFrom: "bin/e2e-timings.md",
	}
	var b bytes.Buffer
	if err := rep.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"# T\n",
		"- **Machine**: 2 CPUs",
		"| figure | etcd | sett | ceiling | sett/etcd | sett/ceiling |",
		"| put, 1 client/1 conn (req/s) | 850 (800–900) | 950 | 10000 | 1.12 | 0.10 |",
		"| put, 1 client/1 conn | ≥ 90% of the physical limit (1 round trip + 1 fsync) | 95% | met |",
		"| 4 KiB write + fdatasync: appending to the file (ms) | 2.50 |",
		"physical limit, 1 round trip (the ceiling's 1-client put) + 1 fsync (req/s) | 1000 |",
		"![A](a.png)",
		"From `bin/e2e-timings.md`:",
		"\n### Timings\n",
		"| create | 1 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "p10") {
		t.Error("p10 shown in the Markdown table; it belongs to the CSV only")
	}
	if strings.Contains(md, "| 4 KiB write + fdatasync: appending to the file (ms) | –") {
		t.Error("a machine row is in the server figures table")
	}

	var c bytes.Buffer
	if err := WriteSummaryCSV(&c, tab, labels, servers, ratios); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&c).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	head := strings.Join(recs[0], ",")
	if head != "figure,metric,label,unit,etcd_median,etcd_min,etcd_max,etcd_n,sett_median,sett_min,sett_max,sett_n,ceiling_median,ceiling_min,ceiling_max,ceiling_n,sett_over_etcd,sett_over_ceiling" {
		t.Errorf("CSV header %q", head)
	}
	found := false
	for _, r := range recs[1:] {
		if r[0] == "put1" && r[1] == "throughput" {
			found = true
			if got := strings.Join(r, ","); got != "put1,throughput,\"put, 1 client/1 conn\",req/s,850,800,900,2,950,950,950,1,10000,10000,10000,1,1.118,0.095" &&
				got != "put1,throughput,put, 1 client/1 conn,req/s,850,800,900,2,950,950,950,1,10000,10000,10000,1,1.118,0.095" {
				t.Errorf("put1 row %q", got)
			}
		}
	}
	if !found {
		t.Error("no put1 throughput row in the CSV")
	}
}

func TestRunWritesEverything(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	results := write("results.tsv", "put1\tthroughput\treq/s\tetcd\t1\t1000\nput1\tthroughput\treq/s\tsett\t1\t1200\n")
	labels := write("labels.tsv", "put1\tput, 1 client/1 conn\n")
	meta := write("meta.tsv", "Machine\ttest box\n")
	out := filepath.Join(dir, "out")
	specPath := filepath.Join(dir, "spec", "plots.json")
	if err := os.MkdirAll(filepath.Dir(specPath), 0o755); err != nil {
		t.Fatal(err)
	}
	o := options{results: results, labels: labels, meta: meta, servers: "etcd sett ceiling", out: out,
		plotSpec: specPath, e2e: filepath.Join(dir, "absent.md"), title: "T"}
	if err := run(o); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(out, "latest.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "| put, 1 client/1 conn (req/s) | 1000 | 1200 | 1.20 |") {
		t.Errorf("latest.md:\n%s", md)
	}
	if strings.Contains(string(md), "## Plots") || strings.Contains(string(md), "Kubernetes") {
		t.Errorf("latest.md links images not rendered or an absent e2e file:\n%s", md)
	}
	var spec PlotSpec
	js, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(js, &spec); err != nil || len(spec.Files) != 1 || spec.Files[0].File != plotThroughput {
		t.Fatalf("plots.json %s (%v)", js, err)
	}
	// Once the image exists, the second run links it.
	write("out/"+plotThroughput, "png")
	if err := run(o); err != nil {
		t.Fatal(err)
	}
	md, _ = os.ReadFile(filepath.Join(out, "latest.md"))
	if !strings.Contains(string(md), "]("+plotThroughput+")") {
		t.Errorf("second run does not link the rendered image:\n%s", md)
	}
	// The next run's first pass removes it: it is stale until rendered again.
	o.clearPlots = true
	if err := run(o); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, plotThroughput)); !os.IsNotExist(err) {
		t.Errorf("--clear-plots left %s: %v", plotThroughput, err)
	}
	md, _ = os.ReadFile(filepath.Join(out, "latest.md"))
	if strings.Contains(string(md), plotThroughput) {
		t.Errorf("report links a removed image:\n%s", md)
	}
	for _, f := range []string{"latest.csv", "latest-raw.csv"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s missing or empty: %v", f, err)
		}
	}
}

func TestDisplayPath(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ in, want string }{
		{filepath.Join(wd, "bin", "e2e-timings.md"), filepath.Join("bin", "e2e-timings.md")},
		{"bin/e2e-timings.md", "bin/e2e-timings.md"},
		{"/elsewhere/e2e.md", "/elsewhere/e2e.md"},
	}
	for _, tt := range tests {
		if got := displayPath(tt.in); got != tt.want {
			t.Errorf("displayPath(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

package main

import (
	"bytes"
	"encoding/csv"
	"strings"
	"testing"
)

// clusterMeasurements: put1 and range_l on single members (with the
// ceiling) and on 3 members (etcd and sett only), two runs each.
func clusterMeasurements() []Measurement {
	return []Measurement{
		m("put1", "throughput", "req/s", "etcd", 1, 500),
		m("put1", "throughput", "req/s", "sett", 1, 800),
		m("put1", "throughput", "req/s", "ceiling", 1, 4000),
		m("put100", "throughput", "req/s", "etcd", 1, 5000),
		m("put100", "throughput", "req/s", "sett", 1, 6000),
		m("put1_3m", "throughput", "req/s", "etcd", 1, 300),
		m("put1_3m", "throughput", "req/s", "etcd", 2, 500),
		m("put1_3m", "throughput", "req/s", "sett", 1, 600),
		m("put1_3m", "throughput", "req/s", "sett", 2, 600),
		m("put1_3m", "p50", "ms", "etcd", 1, 2),
		m("put1_3m", "p99", "ms", "etcd", 1, 9),
		m("put1_3m", "p99", "ms", "sett", 1, 3),
		m("put1_3m", "p10", "ms", "sett", 1, 1),
		m("put100_3m", "throughput", "req/s", "etcd", 1, 2500),
		m("put100_3m", "throughput", "req/s", "sett", 1, 4000),
		m("range_l_3m", "throughput", "req/s", "sett", 1, 7000), // etcd's run missing
	}
}

var clusterLabels = map[string]string{
	"put1": "put, 1 client", "put1_3m": "put, 1 client to the leader, 3 members",
	"put100_3m": "put, 100 clients, 3 members", "range_l_3m": "range l, 3 members",
}

func TestClusterBase(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"put1_3m", "put1", true},
		{"range_l_3m", "range_l", true},
		{"put1", "", false},
		{"_3m", "", false},
		{"put1_3m_x", "", false},
	}
	for _, tt := range tests {
		got, ok := clusterBase(tt.in)
		if ok != tt.ok || (ok && got != tt.want) {
			t.Errorf("clusterBase(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestMemberRatio(t *testing.T) {
	tab := NewTable(clusterMeasurements(), nil)
	tests := []struct {
		figure, metric, server string
		want                   float64
		ok                     bool
	}{
		{"put1_3m", "throughput", "etcd", 400.0 / 500, true},
		{"put1_3m", "throughput", "sett", 600.0 / 800, true},
		{"put100_3m", "throughput", "sett", 4000.0 / 6000, true},
		{"put1_3m", "p99", "sett", 0, false},            // no single-member p99
		{"range_l_3m", "throughput", "sett", 0, false},  // no single-member range_l
		{"put1", "throughput", "sett", 0, false},        // not a 3-member figure
		{"put1_3m", "throughput", "ceiling", 0, false},  // the ceiling has no cluster
		{"put100_3m", "throughput", "nobody", 0, false}, // unknown server
	}
	for _, tt := range tests {
		got, ok := tab.MemberRatio(tt.figure, tt.metric, tt.server)
		if ok != tt.ok || (ok && abs(got-tt.want) > 1e-9) {
			t.Errorf("MemberRatio(%s, %s, %s) = %v, %v; want %v, %v", tt.figure, tt.metric, tt.server, got, ok, tt.want, tt.ok)
		}
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

func TestClusterColumns(t *testing.T) {
	tab := NewTable(clusterMeasurements(), nil)
	servers, ratios := Columns(tab, []string{"etcd", "sett", "ceiling"})
	cs, cr := ClusterColumns(tab, servers, ratios)
	if got := strings.Join(cs, " "); got != "etcd sett" {
		t.Errorf("cluster servers %q, want \"etcd sett\" (the ceiling has no 3-member figure)", got)
	}
	if len(cr) != 1 || cr[0] != (RatioColumn{"sett", "etcd"}) {
		t.Errorf("cluster ratios %+v, want only sett/etcd", cr)
	}
	// Without 3-member figures there is no cluster column at all.
	single := NewTable(clusterMeasurements()[:5], nil)
	s2, r2 := Columns(single, []string{"etcd", "sett", "ceiling"})
	if cs, cr := ClusterColumns(single, s2, r2); len(cs) != 0 || len(cr) != 0 {
		t.Errorf("ClusterColumns without 3-member figures = %v, %v", cs, cr)
	}
}

func TestWriteMarkdownClusterSection(t *testing.T) {
	tab := NewTable(clusterMeasurements(), nil)
	servers, ratios := Columns(tab, []string{"etcd", "sett", "ceiling"})
	rep := &Report{Title: "T", Table: tab, Labels: clusterLabels, Servers: servers, Ratios: ratios}
	var b bytes.Buffer
	if err := rep.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	figures, cluster, ok := strings.Cut(md, "\n## 3 members\n")
	if !ok {
		t.Fatalf("no 3-member section:\n%s", md)
	}
	if strings.Contains(figures, "3 members") {
		t.Errorf("3-member rows in the single-member table:\n%s", figures)
	}
	for _, want := range []string{
		"| figure | etcd | sett | sett/etcd | etcd 3m/1m | sett 3m/1m |\n|---|---|---|---|---|---|\n",
		"| put, 1 client to the leader, 3 members (req/s) | 400 (300–500) | 600 (600–600) | 1.50 | 0.80 | 0.75 |",
		"| put, 1 client to the leader, 3 members p50 (ms) | 2.00 | – | – | – | – |",
		"| put, 1 client to the leader, 3 members p99 (ms) | 9.00 | 3.00 | 0.33 | – | – |",
		"| range l, 3 members (req/s) | – | 7000 | – | – | – |",
		"`--target-leader`",
	} {
		if !strings.Contains(cluster, want) {
			t.Errorf("3-member section lacks %q:\n%s", want, cluster)
		}
	}
	if strings.Contains(cluster, "p10") || strings.Contains(cluster, "ceiling |") {
		t.Errorf("3-member section shows p10 or a ceiling column:\n%s", cluster)
	}
	if !strings.Contains(figures, "| put, 1 client (req/s) | 500 | 800 | 4000 | 1.60 | 0.20 |") {
		t.Errorf("single-member table changed:\n%s", figures)
	}

	// No 3-member figures: no section.
	single := NewTable(clusterMeasurements()[:5], nil)
	s2, r2 := Columns(single, []string{"etcd", "sett", "ceiling"})
	b.Reset()
	if err := (&Report{Title: "T", Table: single, Labels: clusterLabels, Servers: s2, Ratios: r2}).WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "3 members") {
		t.Errorf("3-member section without 3-member figures:\n%s", b.String())
	}
}

func TestSummaryCSVMemberRatios(t *testing.T) {
	tab := NewTable(clusterMeasurements(), nil)
	servers, ratios := Columns(tab, []string{"etcd", "sett", "ceiling"})
	var b bytes.Buffer
	if err := WriteSummaryCSV(&b, tab, clusterLabels, servers, ratios); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	head := recs[0]
	if got := strings.Join(head[len(head)-4:], ","); got != "sett_over_etcd,sett_over_ceiling,etcd_3m_over_1m,sett_3m_over_1m" {
		t.Errorf("CSV header ends %q", got)
	}
	rows := map[string][]string{}
	for _, r := range recs[1:] {
		if len(r) != len(head) {
			t.Fatalf("row %v has %d fields, header %d", r, len(r), len(head))
		}
		rows[r[0]+"/"+r[1]] = r
	}
	tail := func(key string, n int) string {
		r, ok := rows[key]
		if !ok {
			t.Fatalf("no CSV row %s", key)
		}
		return strings.Join(r[len(r)-n:], ",")
	}
	if got := tail("put1_3m/throughput", 4); got != "1.500,,0.800,0.750" {
		t.Errorf("put1_3m ratios %q, want sett/etcd 1.5, no ceiling ratio, 3m/1m 0.8 and 0.75", got)
	}
	if got := tail("put1/throughput", 4); got != "1.600,0.200,," {
		t.Errorf("put1 ratios %q: a single-member row has no 3m/1m", got)
	}
	if r := rows["put1_3m/throughput"]; r[2] != clusterLabels["put1_3m"] || r[4] != "400" || r[5] != "300" || r[6] != "500" || r[7] != "2" {
		t.Errorf("put1_3m row %v, want etcd median 400 (300–500) of 2", r)
	}

	// Without 3-member figures the header is as before.
	single := NewTable(clusterMeasurements()[:5], nil)
	s2, r2 := Columns(single, []string{"etcd", "sett", "ceiling"})
	b.Reset()
	if err := WriteSummaryCSV(&b, single, clusterLabels, s2, r2); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "3m_over_1m") {
		t.Errorf("3m/1m columns without 3-member figures:\n%s", b.String())
	}
}

func TestBuildPlotsCluster(t *testing.T) {
	tab := NewTable(clusterMeasurements(), nil)
	spec := BuildPlots(tab, clusterLabels, []string{"etcd", "sett", "ceiling"})
	var thr, lat *PlotFile
	for i := range spec.Files {
		switch spec.Files[i].File {
		case plotThroughput:
			thr = &spec.Files[i]
		case plotLatency:
			lat = &spec.Files[i]
		}
	}
	if thr == nil || lat == nil {
		t.Fatalf("plot files %+v", spec.Files)
	}
	var names []string
	for _, s := range thr.Panels[0].Series {
		names = append(names, s.Name)
		if s.Dotted != strings.HasSuffix(s.Name, "3 members") {
			t.Errorf("series %q dotted=%v", s.Name, s.Dotted)
		}
	}
	if got := strings.Join(names, "|"); got != "etcd, 1 member|sett, 1 member|ceiling|etcd, 3 members|sett, 3 members" {
		t.Errorf("throughput series %q", got)
	}
	c := thr.Panels[0].Series[3]
	if c.Server != "etcd" || len(c.Points) != 2 || c.Points[0] != (Point{1, 400, 300, 500}) || c.Points[1].X != 100 {
		t.Errorf("etcd's 3-member series %+v, want the etcd colour and points at 1 and 100 clients", c)
	}
	// put1 has no latency of its own here: put1_3m gets its own panel,
	// drawn dotted throughout.
	if len(lat.Panels) != 1 || lat.Panels[0].Title != clusterLabels["put1_3m"] {
		t.Fatalf("latency panels %+v", lat.Panels)
	}
	for _, s := range lat.Panels[0].Series {
		if !s.Dotted || s.Name != s.Server {
			t.Errorf("lone 3-member panel series %+v", s)
		}
	}

	// With put1's latencies, put1_3m joins put1's panel.
	ms := append(clusterMeasurements(),
		m("put1", "p50", "ms", "etcd", 1, 1), m("put1", "p99", "ms", "etcd", 1, 4))
	spec = BuildPlots(NewTable(ms, nil), clusterLabels, []string{"etcd", "sett", "ceiling"})
	for _, f := range spec.Files {
		if f.File != plotLatency {
			continue
		}
		if len(f.Panels) != 1 || f.Panels[0].Title != "put, 1 client; dotted: 3 members" {
			t.Fatalf("latency panels %+v", f.Panels)
		}
		names = names[:0]
		for _, s := range f.Panels[0].Series {
			names = append(names, s.Name)
		}
		if got := strings.Join(names, "|"); got != "etcd, 1 member|etcd, 3 members|sett, 3 members" {
			t.Errorf("merged latency series %q", got)
		}
	}
}

package main

import (
	"fmt"
	"math"
	"slices"
	"strconv"
)

// The plot spec is the contract with the renderer in bench/plot (its own
// module, so that gonum stays out of the root go.mod): bench/plot decodes
// the same JSON shape.

// PlotFile is one image of one or more panels, laid out in Columns.
type PlotFile struct {
	File    string  `json:"file"`
	Title   string  `json:"title"`
	Columns int     `json:"columns"`
	Panels  []Panel `json:"panels"`
}

// Panel is one chart.
type Panel struct {
	Title  string   `json:"title"`
	XLabel string   `json:"xlabel"`
	YLabel string   `json:"ylabel"`
	LogX   bool     `json:"logx"`
	LogY   bool     `json:"logy"`
	XTicks []Tick   `json:"xticks,omitempty"`
	Series []Series `json:"series"`
}

// Tick is a labelled x position.
type Tick struct {
	X     float64 `json:"x"`
	Label string  `json:"label"`
}

// Series is one server's line. Server picks the colour (the same
// server's series share it; empty: Name); Dotted marks 3-member figures.
type Series struct {
	Name   string  `json:"name"`
	Server string  `json:"server,omitempty"`
	Dotted bool    `json:"dotted,omitempty"`
	Points []Point `json:"points"`
}

// Point is a median with its min and max over the repeats.
type Point struct {
	X  float64 `json:"x"`
	Y  float64 `json:"y"`
	Lo float64 `json:"lo"`
	Hi float64 `json:"hi"`
}

// PlotSpec is the whole file bench/plot reads.
type PlotSpec struct {
	Files []PlotFile `json:"files"`
}

// Image file names the report links to.
const (
	plotThroughput = "throughput-vs-clients.png"
	plotLatency    = "latency-percentiles.png"
	plotRSS        = "rss-vs-keys.png"
)

// BuildPlots turns the table into the plots: put throughput against
// clients, latency against percentile for every figure with a latency
// distribution, and RSS against keys loaded. A 3-member figure goes into
// its single-member figure's panel as dotted lines. Plots without data
// are left out.
func BuildPlots(t *Table, labels map[string]string, servers []string) PlotSpec {
	var spec PlotSpec
	if p := throughputPanel(t, servers); len(p.Series) > 0 {
		spec.Files = append(spec.Files, PlotFile{File: plotThroughput, Title: "", Columns: 1, Panels: []Panel{p}})
	}
	var lat []Panel
	withLatency := figuresWith(t, "p99")
	for _, fig := range withLatency {
		if base, ok := clusterBase(fig); ok && slices.Contains(withLatency, base) {
			continue // drawn in its single-member figure's panel
		}
		if p := latencyPanel(t, fig, labels[fig], servers); len(p.Series) > 0 {
			lat = append(lat, p)
		}
	}
	if len(lat) > 0 {
		spec.Files = append(spec.Files, PlotFile{File: plotLatency, Title: "Latency percentiles (median of the runs; bars: min–max)", Columns: 2, Panels: lat})
	}
	if p := rssPanel(t, servers); len(p.Series) > 0 {
		spec.Files = append(spec.Files, PlotFile{File: plotRSS, Columns: 1, Panels: []Panel{p}})
	}
	return spec
}

// figuresWith lists, in table order, the figures that have a metric.
func figuresWith(t *Table, metric string) []string {
	var out []string
	for _, k := range t.Rows {
		if k.Metric == metric {
			out = append(out, k.Figure)
		}
	}
	return out
}

func point(x float64, s Summary) Point { return Point{X: x, Y: s.Median, Lo: s.Min, Hi: s.Max} }

// throughputPanel plots the put figures against their client counts:
// one series per server on a single member, and one (dotted) per server
// on 3 members where those were measured.
func throughputPanel(t *Table, servers []string) Panel {
	p := Panel{Title: "put throughput against clients (10 clients per connection)", XLabel: "clients", YLabel: "req/s", LogX: true}
	clients := []struct {
		fig string
		n   float64
	}{{figPut1, 1}, {figPut100, 100}, {figPut1000, 1000}}
	for _, c := range clients {
		p.XTicks = append(p.XTicks, Tick{X: c.n, Label: strconv.Itoa(int(c.n))})
	}
	series := func(srv, suffix string) Series {
		s := Series{Name: srv, Server: srv, Dotted: suffix != ""}
		for _, c := range clients {
			if sum, ok := t.Get(c.fig+suffix, "throughput", srv); ok {
				s.Points = append(s.Points, point(c.n, sum))
			}
		}
		return s
	}
	var single, cluster []Series
	for _, srv := range servers {
		if s := series(srv, ""); len(s.Points) > 0 {
			single = append(single, s)
		}
		if s := series(srv, clusterSuffix); len(s.Points) > 0 {
			cluster = append(cluster, s)
		}
	}
	if len(cluster) > 0 {
		p.Title = "put throughput against clients (10 clients per connection; dotted: 3 members)"
		nameMembers(single, cluster)
	}
	p.Series = append(single, cluster...)
	return p
}

// nameMembers names series by their member count, for panels that show
// both (the ceiling is never a cluster and keeps its name).
func nameMembers(single, cluster []Series) {
	for i := range single {
		if single[i].Server != ceiling {
			single[i].Name += ", 1 member"
		}
	}
	for i := range cluster {
		cluster[i].Name += ", 3 members"
	}
}

// nines maps a percentile to its number of nines, -log10(1-p/100), so
// that p50, p90, p99 and p99.9 are evenly spaced.
func nines(p float64) float64 { return -math.Log10(1 - p/100) }

// latencyPanel plots one figure's latency percentiles, and those of its
// 3-member figure (dotted) if there is one.
func latencyPanel(t *Table, fig, label string, servers []string) Panel {
	p := Panel{Title: label, XLabel: "percentile", YLabel: "ms", LogY: true}
	for _, m := range percentileMetrics {
		pc, _ := percentileOf(m)
		if pc < 50 {
			continue // the tail is the point; p10/p25 crowd the axis
		}
		p.XTicks = append(p.XTicks, Tick{X: nines(pc), Label: m})
	}
	single := latencySeries(t, fig, servers)
	var cluster []Series
	if isClusterFigure(fig) {
		// Only when its single-member figure has no panel of its own.
		single, cluster = nil, single
	} else {
		cluster = latencySeries(t, fig+clusterSuffix, servers)
	}
	for i := range cluster {
		cluster[i].Dotted = true
	}
	if len(single) > 0 && len(cluster) > 0 {
		p.Title += "; dotted: 3 members"
		nameMembers(single, cluster)
	}
	p.Series = append(single, cluster...)
	return p
}

// latencySeries is one series per server of a figure's percentiles from
// p50 up.
func latencySeries(t *Table, fig string, servers []string) []Series {
	var out []Series
	for _, srv := range servers {
		s := Series{Name: srv, Server: srv}
		for _, m := range percentileMetrics {
			pc, _ := percentileOf(m)
			if pc < 50 {
				continue
			}
			// A zero latency (the watch event arrived before the put's
			// response) cannot go on a log axis.
			if sum, ok := t.Get(fig, m, srv); ok && sum.Median > 0 {
				lo := sum.Min
				if lo <= 0 {
					lo = sum.Median
				}
				s.Points = append(s.Points, Point{X: nines(pc), Y: sum.Median, Lo: lo, Hi: sum.Max})
			}
		}
		if len(s.Points) > 0 {
			out = append(out, s)
		}
	}
	return out
}

// rssPanel plots the RSS after each load figure against its key count.
func rssPanel(t *Table, servers []string) Panel {
	p := Panel{Title: "RSS after loading keys (256-byte values)", XLabel: "keys", YLabel: "MiB", LogX: true}
	loads := []string{figLoad, figLoadBig, figLoadHuge}
	for _, srv := range servers {
		s := Series{Name: srv}
		for _, fig := range loads {
			keys, ok1 := t.Get(fig, "keys", srv)
			rss, ok2 := t.Get(fig, "rss", srv)
			if ok1 && ok2 && keys.Median > 0 {
				s.Points = append(s.Points, point(keys.Median, rss))
			}
		}
		if len(s.Points) > 0 {
			p.Series = append(p.Series, s)
		}
	}
	for _, fig := range loads {
		for _, srv := range servers {
			if keys, ok := t.Get(fig, "keys", srv); ok {
				p.XTicks = append(p.XTicks, Tick{X: keys.Median, Label: humanCount(keys.Median)})
				break
			}
		}
	}
	return p
}

// humanCount renders 100000 as 100k and 5000000 as 5M.
func humanCount(n float64) string {
	switch {
	case n >= 1e6 && math.Mod(n, 1e6) == 0:
		return fmt.Sprintf("%.0fM", n/1e6)
	case n >= 1e3 && math.Mod(n, 1e3) == 0:
		return fmt.Sprintf("%.0fk", n/1e3)
	default:
		return strconv.FormatFloat(n, 'f', -1, 64)
	}
}

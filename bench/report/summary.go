package main

import (
	"slices"
)

// Summary is the spread of one row for one server over its repeats.
type Summary struct {
	Median, Min, Max float64
	N                int
}

// Summarize returns the median (the mean of the middle two for an even
// count), min and max of values; N is 0 for no values.
func Summarize(values []float64) Summary {
	if len(values) == 0 {
		return Summary{}
	}
	v := slices.Clone(values)
	slices.Sort(v)
	n := len(v)
	med := v[n/2]
	if n%2 == 0 {
		med = (v[n/2-1] + v[n/2]) / 2
	}
	return Summary{Median: med, Min: v[0], Max: v[n-1], N: n}
}

// Table holds every row's summaries.
type Table struct {
	// Rows in report order: figures in labels order, metrics in order of
	// first appearance within a figure.
	Rows    []Key
	Units   map[Key]string
	Servers []string // in order of first appearance
	cells   map[Key]map[string]Summary
}

// NewTable summarizes measurements. Figures missing from labels go last,
// in order of appearance.
func NewTable(ms []Measurement, labels []Figure) *Table {
	t := &Table{Units: map[Key]string{}, cells: map[Key]map[string]Summary{}}
	values := map[Key]map[string][]float64{}
	metricsOf := map[string][]string{}
	var figOrder []string
	seenFig := map[string]bool{}
	seenServer := map[string]bool{}
	for _, m := range ms {
		k := Key{m.Figure, m.Metric}
		if !seenFig[m.Figure] {
			seenFig[m.Figure] = true
			figOrder = append(figOrder, m.Figure)
		}
		if values[k] == nil {
			values[k] = map[string][]float64{}
			metricsOf[m.Figure] = append(metricsOf[m.Figure], m.Metric)
			t.Units[k] = m.Unit
		}
		values[k][m.Server] = append(values[k][m.Server], m.Value)
		if !seenServer[m.Server] {
			seenServer[m.Server] = true
			t.Servers = append(t.Servers, m.Server)
		}
	}
	var order []string
	for _, f := range labels {
		if seenFig[f.ID] {
			order = append(order, f.ID)
		}
	}
	for _, id := range figOrder {
		if !slices.Contains(order, id) {
			order = append(order, id)
		}
	}
	for _, id := range order {
		for _, metric := range metricsOf[id] {
			k := Key{id, metric}
			t.Rows = append(t.Rows, k)
			t.cells[k] = map[string]Summary{}
			for srv, v := range values[k] {
				t.cells[k][srv] = Summarize(v)
			}
		}
	}
	return t
}

// Get returns the summary of a row for a server; ok is false when that
// server has no value in that row.
func (t *Table) Get(figure, metric, server string) (Summary, bool) {
	s, ok := t.cells[Key{figure, metric}][server]
	return s, ok && s.N > 0
}

// Ratio is median(a)/median(b) of a row; ok is false when either is
// missing or b's median is zero.
func (t *Table) Ratio(figure, metric, a, b string) (float64, bool) {
	sa, okA := t.Get(figure, metric, a)
	sb, okB := t.Get(figure, metric, b)
	if !okA || !okB || sb.Median == 0 {
		return 0, false
	}
	return sa.Median / sb.Median, true
}

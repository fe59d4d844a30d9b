package main

import (
	"fmt"
	"slices"
	"strings"
)

// bench/run.sh records a figure measured on a 3-member cluster under the
// id of the same figure on a single member plus this suffix (put1 and
// put1_3m), so that the report can set the two side by side.
const clusterSuffix = "_3m"

// clusterBase returns the single-member figure id of a 3-member figure
// id; ok is false for any other id.
func clusterBase(figure string) (string, bool) {
	base, ok := strings.CutSuffix(figure, clusterSuffix)
	return base, ok && base != ""
}

func isClusterFigure(figure string) bool {
	_, ok := clusterBase(figure)
	return ok
}

// MemberRatio is, for one server, the median of a 3-member figure's
// metric over the median of the same metric of its single-member figure:
// what replication costs that server. ok is false when either is missing
// or the single-member median is zero.
func (t *Table) MemberRatio(figure, metric, server string) (float64, bool) {
	base, ok := clusterBase(figure)
	if !ok {
		return 0, false
	}
	c, ok1 := t.Get(figure, metric, server)
	s, ok2 := t.Get(base, metric, server)
	if !ok1 || !ok2 || s.Median == 0 {
		return 0, false
	}
	return c.Median / s.Median, true
}

// clusterRows lists the table's 3-member rows, in table order.
func clusterRows(t *Table) []Key {
	var out []Key
	for _, k := range t.Rows {
		if isClusterFigure(k.Figure) {
			out = append(out, k)
		}
	}
	return out
}

// ClusterColumns picks, from the report's columns, those of the 3-member
// table: the servers with a 3-member measurement (the ceiling has none:
// it cannot replicate) and the ratios between two of them.
func ClusterColumns(t *Table, servers []string, ratios []RatioColumn) ([]string, []RatioColumn) {
	rows := clusterRows(t)
	var cs []string
	for _, s := range servers {
		if slices.ContainsFunc(rows, func(k Key) bool { _, ok := t.Get(k.Figure, k.Metric, s); return ok }) {
			cs = append(cs, s)
		}
	}
	var cr []RatioColumn
	for _, r := range ratios {
		if slices.Contains(cs, r.Of) && slices.Contains(cs, r.Over) {
			cr = append(cr, r)
		}
	}
	return cs, cr
}

func (r *Report) writeCluster(b *strings.Builder) {
	rows := clusterRows(r.Table)
	servers, ratios := ClusterColumns(r.Table, r.Servers, r.Ratios)
	if len(rows) == 0 || len(servers) == 0 {
		return
	}
	b.WriteString("\n## 3 members\n\n")
	b.WriteString("Each server as a 3-member cluster on 127.0.0.1 (the same flags for both, fsync on, one cluster at a time). " +
		"The 1-client put goes to the leader (`--target-leader`, as etcd's performance guide writes to the leader); the other figures spread their connections over all three members. " +
		"Cells and ratios as above; `3m/1m` is the server's 3-member median over its single-member median of the same figure: what replication costs it.\n\n")
	b.WriteString("| figure |")
	for _, s := range servers {
		fmt.Fprintf(b, " %s |", s)
	}
	for _, c := range ratios {
		fmt.Fprintf(b, " %s/%s |", c.Of, c.Over)
	}
	for _, s := range servers {
		fmt.Fprintf(b, " %s 3m/1m |", s)
	}
	b.WriteString("\n|---|" + strings.Repeat("---|", 2*len(servers)+len(ratios)) + "\n")
	for _, k := range rows {
		if !shownInTable(k.Metric) {
			continue
		}
		unit := r.Table.Units[k]
		fmt.Fprintf(b, "| %s |", r.rowName(k))
		for _, s := range servers {
			if sum, ok := r.Table.Get(k.Figure, k.Metric, s); ok {
				fmt.Fprintf(b, " %s |", FormatSummary(sum, unit))
			} else {
				b.WriteString(" – |")
			}
		}
		for _, c := range ratios {
			b.WriteString(ratioCell(r.Table.Ratio(k.Figure, k.Metric, c.Of, c.Over)))
		}
		for _, s := range servers {
			b.WriteString(ratioCell(r.Table.MemberRatio(k.Figure, k.Metric, s)))
		}
		b.WriteString("\n")
	}
}

// ratioCell renders a Markdown table cell of a ratio, or a dash.
func ratioCell(v float64, ok bool) string {
	if !ok {
		return " – |"
	}
	return fmt.Sprintf(" %.2f |", v)
}

package main

import (
	"encoding/csv"
	"io"
	"strconv"
)

// formatFloat keeps seven significant digits: enough for any measurement,
// and no float noise from averaging two medians (0.7504500000000001).
func formatFloat(x float64) string { return strconv.FormatFloat(x, 'g', 7, 64) }

// WriteSummaryCSV writes one line per row of the table: figure id,
// metric, label, unit, then median/min/max/n for each server and the
// ratios (empty where not measured). When there are 3-member figures,
// each server measured on 3 members also gets a <server>_3m_over_1m
// column (see Table.MemberRatio), filled on the 3-member rows.
func WriteSummaryCSV(w io.Writer, t *Table, labels map[string]string, servers []string, ratios []RatioColumn) error {
	cw := csv.NewWriter(w)
	head := []string{"figure", "metric", "label", "unit"}
	for _, s := range servers {
		head = append(head, s+"_median", s+"_min", s+"_max", s+"_n")
	}
	for _, r := range ratios {
		head = append(head, r.Of+"_over_"+r.Over)
	}
	members, _ := ClusterColumns(t, servers, nil)
	for _, s := range members {
		head = append(head, s+"_3m_over_1m")
	}
	if err := cw.Write(head); err != nil {
		return err
	}
	for _, k := range t.Rows {
		rec := []string{k.Figure, k.Metric, labels[k.Figure], t.Units[k]}
		for _, s := range servers {
			if sum, ok := t.Get(k.Figure, k.Metric, s); ok {
				rec = append(rec, formatFloat(sum.Median), formatFloat(sum.Min), formatFloat(sum.Max), strconv.Itoa(sum.N))
			} else {
				rec = append(rec, "", "", "", "0")
			}
		}
		for _, r := range ratios {
			rec = append(rec, csvRatio(t.Ratio(k.Figure, k.Metric, r.Of, r.Over)))
		}
		for _, s := range members {
			rec = append(rec, csvRatio(t.MemberRatio(k.Figure, k.Metric, s)))
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func csvRatio(v float64, ok bool) string {
	if !ok {
		return ""
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}

// WriteRawCSV writes every measurement.
func WriteRawCSV(w io.Writer, ms []Measurement, labels map[string]string) error {
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"figure", "metric", "label", "unit", "server", "repeat", "value"}); err != nil {
		return err
	}
	for _, m := range ms {
		if err := cw.Write([]string{m.Figure, m.Metric, labels[m.Figure], m.Unit, m.Server, strconv.Itoa(m.Repeat), formatFloat(m.Value)}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// RatioColumn is a column of median(Of)/median(Over).
type RatioColumn struct{ Of, Over string }

// Report is everything the Markdown report shows.
type Report struct {
	Title   string
	Meta    []MetaLine
	Table   *Table
	Labels  map[string]string
	Servers []string // server columns, in order
	Ratios  []RatioColumn
	Goals   []GoalResult
	Images  []PlotFile // only those rendered
	E2E     string     // Markdown of the Kubernetes workload timings, if any
	E2EFrom string     // where it came from
}

// Columns picks the server columns and ratio columns: the baseline
// (first of wanted that is not the ceiling), the other servers, the
// ceiling last; each other server over the baseline and over the ceiling.
// Servers with no measurement are left out.
func Columns(t *Table, wanted []string) ([]string, []RatioColumn) {
	present := func(s string) bool { return slices.Contains(t.Servers, s) && s != machine }
	var base string
	var others []string
	hasCeiling := false
	for _, s := range wanted {
		switch {
		case !present(s) || slices.Contains(others, s) || s == base:
		case s == ceiling:
			hasCeiling = true
		case base == "":
			base = s
		default:
			others = append(others, s)
		}
	}
	var servers []string
	if base != "" {
		servers = append(servers, base)
	}
	servers = append(servers, others...)
	if hasCeiling {
		servers = append(servers, ceiling)
	}
	var ratios []RatioColumn
	for _, s := range others {
		ratios = append(ratios, RatioColumn{s, base})
	}
	if hasCeiling {
		for _, s := range others {
			ratios = append(ratios, RatioColumn{s, ceiling})
		}
		if len(others) == 0 && base != "" {
			ratios = append(ratios, RatioColumn{base, ceiling})
		}
	}
	return servers, ratios
}

func (r *Report) rowName(k Key) string {
	label := r.Labels[k.Figure]
	if label == "" {
		label = k.Figure
	}
	return RowName(label, k.Metric, r.Table.Units[k])
}

// isMachineRow reports whether a row measures the machine rather than a
// server.
func (r *Report) isMachineRow(k Key) bool {
	_, ok := r.Table.Get(k.Figure, k.Metric, machine)
	return ok
}

// WriteMarkdown renders the report.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n", r.Title)
	for _, m := range r.Meta {
		fmt.Fprintf(&b, "- **%s**: %s\n", m.Key, m.Value)
	}
	r.writeGoals(&b)
	r.writeFigures(&b)
	r.writeCluster(&b)
	r.writeMachine(&b)
	r.writeImages(&b)
	if r.E2E != "" {
		fmt.Fprintf(&b, "\n## Kubernetes workload (`make e2e`)\n\nFrom `%s`:\n\n%s\n", displayPath(r.E2EFrom), demoteHeadings(strings.TrimSpace(r.E2E)))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (r *Report) writeGoals(b *strings.Builder) {
	if len(r.Goals) == 0 {
		return
	}
	b.WriteString("\n## Goals (issue #10; reported, never enforced)\n\n| figure | goal | measured | |\n|---|---|---|---|\n")
	for _, g := range r.Goals {
		fmt.Fprintf(b, "| %s | %s | %s | %s |\n", g.Name, g.Target, g.FormatValue(), g.Verdict())
	}
}

func (r *Report) writeFigures(b *strings.Builder) {
	b.WriteString("\n## Figures\n\n")
	b.WriteString("Each cell is the median of the runs with the min–max range; a cell without a range ran once. " +
		"Ratios are of medians: above 1 is better for req/s and events/s, below 1 for latency, memory, disk and start-up time. " +
		"`ceiling` is bench/ceiling: etcd's KV service on the same gRPC stack with an in-memory map and no storage, the most any server can reach on this machine with this client.\n\n")
	b.WriteString("| figure |")
	for _, s := range r.Servers {
		fmt.Fprintf(b, " %s |", s)
	}
	for _, c := range r.Ratios {
		fmt.Fprintf(b, " %s/%s |", c.Of, c.Over)
	}
	b.WriteString("\n|---|" + strings.Repeat("---|", len(r.Servers)+len(r.Ratios)) + "\n")
	for _, k := range r.Table.Rows {
		if !shownInTable(k.Metric) || r.isMachineRow(k) || isClusterFigure(k.Figure) {
			continue
		}
		unit := r.Table.Units[k]
		fmt.Fprintf(b, "| %s |", r.rowName(k))
		for _, s := range r.Servers {
			if sum, ok := r.Table.Get(k.Figure, k.Metric, s); ok {
				fmt.Fprintf(b, " %s |", FormatSummary(sum, unit))
			} else {
				b.WriteString(" – |")
			}
		}
		for _, c := range r.Ratios {
			if v, ok := r.Table.Ratio(k.Figure, k.Metric, c.Of, c.Over); ok {
				fmt.Fprintf(b, " %.2f |", v)
			} else {
				b.WriteString(" – |")
			}
		}
		b.WriteString("\n")
	}
}

func (r *Report) writeMachine(b *strings.Builder) {
	var rows []Key
	for _, k := range r.Table.Rows {
		if r.isMachineRow(k) && shownInTable(k.Metric) {
			rows = append(rows, k)
		}
	}
	lim, hasLimit := PhysicalLimit(r.Table)
	if len(rows) == 0 && !hasLimit {
		return
	}
	b.WriteString("\n## Machine limits\n\n| measurement | value |\n|---|---|\n")
	for _, k := range rows {
		sum, _ := r.Table.Get(k.Figure, k.Metric, machine)
		fmt.Fprintf(b, "| %s | %s |\n", r.rowName(k), FormatSummary(sum, r.Table.Units[k]))
	}
	if hasLimit {
		fmt.Fprintf(b, "| put, 1 client: physical limit, 1 round trip (the ceiling's 1-client put) + 1 fsync (req/s) | %s |\n", FormatNumber(lim, "req/s"))
	}
}

func (r *Report) writeImages(b *strings.Builder) {
	if len(r.Images) == 0 {
		return
	}
	b.WriteString("\n## Plots\n")
	for _, img := range r.Images {
		alt := img.Title
		if alt == "" && len(img.Panels) > 0 {
			alt = img.Panels[0].Title
		}
		fmt.Fprintf(b, "\n![%s](%s)\n", alt, img.File)
	}
}

// displayPath shows a path below the working directory relative to it,
// so that reports do not carry one machine's checkout location.
func displayPath(p string) string {
	wd, err := os.Getwd()
	if err != nil {
		return p
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	if rel, err := filepath.Rel(wd, abs); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return p
}

// demoteHeadings moves an included document's headings two levels down,
// below the report's own section heading.
func demoteHeadings(md string) string {
	lines := strings.Split(md, "\n")
	inFence := false
	for i, l := range lines {
		if strings.HasPrefix(l, "```") {
			inFence = !inFence
		}
		if !inFence && strings.HasPrefix(l, "#") {
			lines[i] = "##" + l
		}
	}
	return strings.Join(lines, "\n")
}

// renderedImages keeps the plot files that exist in dir.
func renderedImages(dir string, files []PlotFile) []PlotFile {
	var out []PlotFile
	for _, f := range files {
		if st, err := os.Stat(filepath.Join(dir, f.File)); err == nil && st.Size() > 0 {
			out = append(out, f)
		}
	}
	return out
}

// Command report turns the measurements of bench/run.sh into the
// benchmark report: a Markdown file (goals, figures with medians, ranges
// and ratios, machine limits, plots, the Kubernetes workload timings if
// present), a summary CSV, a CSV of every measurement, and the plot spec
// that bench/plot renders into PNG files.
//
// Usage: report --results=F --labels=F --meta=F --servers="etcd sett ceiling" --out=DIR [--plot-spec=F] [--e2e=F]
//
// bench/run.sh runs it twice: once (with --clear-plots) to write the plot
// spec, and again after bench/plot has rendered the images, so that the
// Markdown links only the images rendered for this run.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

type options struct {
	results, labels, meta, servers, out, plotSpec, e2e, title string
	clearPlots                                                bool
}

func main() {
	var o options
	flag.StringVar(&o.results, "results", "", "measurements file (figure, metric, unit, server, repeat, value; tab-separated)")
	flag.StringVar(&o.labels, "labels", "", "figure labels file (id, label; tab-separated)")
	flag.StringVar(&o.meta, "meta", "", "run description file (key, value; tab-separated)")
	flag.StringVar(&o.servers, "servers", "etcd sett ceiling", "server columns; the first that is not the ceiling is the ratios' baseline")
	flag.StringVar(&o.out, "out", "", "directory for latest.md, latest.csv and latest-raw.csv")
	flag.StringVar(&o.plotSpec, "plot-spec", "", "where to write the plot spec for bench/plot (default: plots.json in --out)")
	flag.BoolVar(&o.clearPlots, "clear-plots", false, "first remove the images of an earlier run from --out, so that the report links only images rendered now")
	flag.StringVar(&o.e2e, "e2e", "", "Markdown file of Kubernetes workload timings to include if it exists")
	flag.StringVar(&o.title, "title", "Benchmark: sett vs etcd", "report title")
	flag.Parse()
	if o.results == "" || o.labels == "" || o.out == "" {
		fmt.Fprintln(os.Stderr, "report: --results, --labels and --out are required")
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	ms, err := parseFile(o.results, ParseResults)
	if err != nil {
		return err
	}
	figs, err := parseFile(o.labels, ParseLabels)
	if err != nil {
		return err
	}
	var meta []MetaLine
	if o.meta != "" {
		if meta, err = parseFile(o.meta, ParseMeta); err != nil {
			return err
		}
	}
	labels := map[string]string{}
	for _, f := range figs {
		labels[f.ID] = f.Label
	}
	t := NewTable(ms, figs)
	servers, ratios := Columns(t, strings.Fields(o.servers))
	spec := BuildPlots(t, labels, servers)
	if o.clearPlots {
		for _, f := range spec.Files {
			if err := os.Remove(filepath.Join(o.out, f.File)); err != nil && !os.IsNotExist(err) {
				return err
			}
		}
	}

	rep := &Report{
		Title: o.title, Meta: meta, Table: t, Labels: labels,
		Servers: servers, Ratios: ratios, Goals: EvaluateGoals(t, Goals),
		Images: renderedImages(o.out, spec.Files),
	}
	if o.e2e != "" {
		if b, err := os.ReadFile(o.e2e); err == nil {
			rep.E2E, rep.E2EFrom = string(b), o.e2e
		} else if !os.IsNotExist(err) {
			return err
		}
	}

	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	var md, sum, raw bytes.Buffer
	if err := rep.WriteMarkdown(&md); err != nil {
		return err
	}
	if err := WriteSummaryCSV(&sum, t, labels, servers, ratios); err != nil {
		return err
	}
	if err := WriteRawCSV(&raw, ms, labels); err != nil {
		return err
	}
	js, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return err
	}
	specPath := o.plotSpec
	if specPath == "" {
		specPath = filepath.Join(o.out, "plots.json")
	}
	for path, data := range map[string][]byte{
		filepath.Join(o.out, "latest.md"): md.Bytes(), filepath.Join(o.out, "latest.csv"): sum.Bytes(),
		filepath.Join(o.out, "latest-raw.csv"): raw.Bytes(), specPath: js,
	} {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func parseFile[T any](path string, parse func(io.Reader) ([]T, error)) ([]T, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	v, err := parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

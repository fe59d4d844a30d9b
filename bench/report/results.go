package main

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Measurement is one value of one run: bench/run.sh appends one line per
// measurement to its results file, tab-separated:
//
//	figure-id  metric  unit  server  repeat  value
type Measurement struct {
	Figure string // stable id, e.g. "put100"
	Metric string // "throughput", "p50", "rss", ...
	Unit   string // "req/s", "ms", "MiB", ...
	Server string // "etcd", "sett", "ceiling", "machine"
	Repeat int
	Value  float64
}

// Key names one row of the report: a figure's metric.
type Key struct{ Figure, Metric string }

// Figure is a figure id with its human label, in the order the script ran
// them (the order of its labels file: id <TAB> label).
type Figure struct{ ID, Label string }

// ParseResults reads the results file.
func ParseResults(r io.Reader) ([]Measurement, error) {
	var out []Measurement
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if strings.TrimSpace(text) == "" {
			continue
		}
		f := strings.Split(text, "\t")
		if len(f) != 6 {
			return nil, fmt.Errorf("results line %d: %d fields, want 6: %q", line, len(f), text)
		}
		rep, err := strconv.Atoi(f[4])
		if err != nil {
			return nil, fmt.Errorf("results line %d: repeat: %w", line, err)
		}
		v, err := strconv.ParseFloat(f[5], 64)
		if err != nil {
			return nil, fmt.Errorf("results line %d: value: %w", line, err)
		}
		for i, name := range []string{"figure", "metric", "unit", "server"} {
			if f[i] == "" {
				return nil, fmt.Errorf("results line %d: empty %s", line, name)
			}
		}
		out = append(out, Measurement{Figure: f[0], Metric: f[1], Unit: f[2], Server: f[3], Repeat: rep, Value: v})
	}
	return out, sc.Err()
}

// ParseLabels reads the labels file (id <TAB> label); a figure listed
// twice keeps its first position and its last label.
func ParseLabels(r io.Reader) ([]Figure, error) {
	var out []Figure
	pos := map[string]int{}
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if strings.TrimSpace(text) == "" {
			continue
		}
		id, label, ok := strings.Cut(text, "\t")
		if !ok || id == "" {
			return nil, fmt.Errorf("labels line %d: want id<TAB>label: %q", line, text)
		}
		if i, seen := pos[id]; seen {
			out[i].Label = label
			continue
		}
		pos[id] = len(out)
		out = append(out, Figure{ID: id, Label: label})
	}
	return out, sc.Err()
}

// MetaLine is one line of the run's description (meta file: key <TAB> value).
type MetaLine struct{ Key, Value string }

// ParseMeta reads the meta file.
func ParseMeta(r io.Reader) ([]MetaLine, error) {
	var out []MetaLine
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if strings.TrimSpace(text) == "" {
			continue
		}
		k, v, ok := strings.Cut(text, "\t")
		if !ok {
			return nil, fmt.Errorf("meta line %d: want key<TAB>value: %q", line, text)
		}
		out = append(out, MetaLine{Key: k, Value: v})
	}
	return out, sc.Err()
}

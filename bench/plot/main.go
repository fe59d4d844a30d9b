// Command plot renders the benchmark plots: it reads the plots.json that
// bench/report writes and draws each file's panels into a PNG next to it.
// It is its own module so that gonum never enters the root go.mod.
//
// Usage: plot --spec=bench/out/plots.json [--out=DIR]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	specPath := flag.String("spec", "", "plots.json written by bench/report")
	out := flag.String("out", "", "directory for the images (default: the spec's directory)")
	flag.Parse()
	if *specPath == "" {
		fmt.Fprintln(os.Stderr, "plot: --spec is required")
		os.Exit(2)
	}
	dir := *out
	if dir == "" {
		dir = filepath.Dir(*specPath)
	}
	if err := run(*specPath, dir); err != nil {
		fmt.Fprintln(os.Stderr, "plot:", err)
		os.Exit(1)
	}
}

func run(specPath, dir string) error {
	b, err := os.ReadFile(specPath)
	if err != nil {
		return err
	}
	var spec plotSpec
	if err := json.Unmarshal(b, &spec); err != nil {
		return fmt.Errorf("%s: %w", specPath, err)
	}
	for _, f := range spec.Files {
		if err := renderFile(f, filepath.Join(dir, f.File)); err != nil {
			return fmt.Errorf("%s: %w", f.File, err)
		}
	}
	return nil
}

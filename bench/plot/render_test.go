package main

import (
	"encoding/json"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"gonum.org/v1/plot/vg"
)

func TestRunRendersEveryFile(t *testing.T) {
	dir := t.TempDir()
	pts := func(ys ...float64) []point {
		var out []point
		for i, y := range ys {
			out = append(out, point{X: float64(i + 1), Y: y, Lo: y * 0.9, Hi: y * 1.1})
		}
		return out
	}
	spec := plotSpec{Files: []plotFile{
		{File: "one.png", Columns: 1, Panels: []panel{{
			Title: "linear", LogX: true, XTicks: []tick{{1, "1"}, {3, "3"}},
			Series: []series{{Name: "etcd", Points: pts(1, 2, 3)}, {Name: "ceiling", Points: pts(3, 4, 5)},
				{Name: "etcd, 3 members", Server: "etcd", Dotted: true, Points: pts(1, 1.5)}},
		}}},
		{File: "grid.png", Columns: 2, Panels: []panel{
			{Title: "a", LogY: true, Series: []series{{Name: "sett", Points: pts(0.5, 2, 40)}}},
			// A zero lower bound on a log axis must not break the plot.
			{Title: "b", LogY: true, Series: []series{{Name: "other", Points: []point{{X: 1, Y: 1, Lo: 0, Hi: 2}}}}},
			{Title: "c, no data"},
		}},
	}}
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	specPath := filepath.Join(dir, "plots.json")
	if err := os.WriteFile(specPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(specPath, dir); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		file         string
		wantW, wantH int
	}{
		{"one.png", 6 * dpi, 4 * dpi},
		{"grid.png", 2 * 6 * dpi, 2 * 4 * dpi},
	}
	for _, tt := range tests {
		f, err := os.Open(filepath.Join(dir, tt.file))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", tt.file, err)
		}
		if got := img.Bounds(); got.Dx() != tt.wantW || got.Dy() != tt.wantH {
			t.Errorf("%s: %dx%d, want %dx%d", tt.file, got.Dx(), got.Dy(), tt.wantW, tt.wantH)
		}
	}
}

func TestRunRejectsBadSpec(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "plots.json")
	if err := os.WriteFile(p, []byte(`{"files":[{"file":"x.png","panels":[]}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(p, dir); err == nil {
		t.Error("a file without panels was accepted")
	}
	if err := os.WriteFile(p, []byte(`not json`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(p, dir); err == nil {
		t.Error("a spec that is not JSON was accepted")
	}
}

func TestStyleOf(t *testing.T) {
	tests := []struct {
		s          series
		i          int
		wantColor  color.RGBA
		wantDashes []vg.Length
	}{
		{series{Name: "etcd"}, 0, serverColors["etcd"], nil},
		{series{Name: "sett, 1 member", Server: "sett"}, 1, serverColors["sett"], nil},
		{series{Name: "sett, 3 members", Server: "sett", Dotted: true}, 3, serverColors["sett"], clusterDashes},
		{series{Name: "ceiling"}, 2, serverColors["ceiling"], ceilingDashes},
		{series{Name: "other"}, 1, otherColors[1], nil},
	}
	for _, tt := range tests {
		c, d := styleOf(tt.s, tt.i)
		if c != tt.wantColor || !slices.Equal(d, tt.wantDashes) {
			t.Errorf("styleOf(%+v, %d) = %v, %v; want %v, %v", tt.s, tt.i, c, d, tt.wantColor, tt.wantDashes)
		}
	}
}

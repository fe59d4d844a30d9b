package main

import (
	"errors"
	"image/color"
	"math"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Panel size in the image; an image is Columns panels wide.
const (
	panelWidth  = 6 * vg.Inch
	panelHeight = 4 * vg.Inch
	dpi         = 96
)

// serverColors keeps each server's colour the same in every panel.
var serverColors = map[string]color.RGBA{
	"etcd":    {R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, // blue
	"sett":    {R: 0xd6, G: 0x27, B: 0x28, A: 0xff}, // red
	"ceiling": {R: 0x7f, G: 0x7f, B: 0x7f, A: 0xff}, // grey
}

var otherColors = []color.RGBA{
	{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	{R: 0x94, G: 0x67, B: 0xbd, A: 0xff},
	{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
}

func colorOf(name string, i int) color.RGBA {
	if c, ok := serverColors[name]; ok {
		return c
	}
	return otherColors[i%len(otherColors)]
}

// Line patterns: the ceiling is dashed, 3-member clusters are dotted.
var (
	ceilingDashes = []vg.Length{vg.Points(6), vg.Points(3)}
	clusterDashes = []vg.Length{vg.Points(1.5), vg.Points(3)}
)

// styleOf returns the colour and line pattern of the i-th series of a
// panel: its server's colour (Server, or else Name), dotted for 3-member
// clusters, dashed for the ceiling, solid otherwise.
func styleOf(s series, i int) (color.RGBA, []vg.Length) {
	srv := s.Server
	if srv == "" {
		srv = s.Name
	}
	switch {
	case s.Dotted:
		return colorOf(srv, i), clusterDashes
	case srv == "ceiling":
		return colorOf(srv, i), ceilingDashes
	default:
		return colorOf(srv, i), nil
	}
}

// renderFile draws a file's panels in a grid and writes the PNG.
func renderFile(f plotFile, path string) error {
	if len(f.Panels) == 0 {
		return errors.New("no panels")
	}
	cols := max(f.Columns, 1)
	cols = min(cols, len(f.Panels))
	rows := (len(f.Panels) + cols - 1) / cols
	grid := make([][]*plot.Plot, rows)
	for r := range grid {
		grid[r] = make([]*plot.Plot, cols)
	}
	for i, pn := range f.Panels {
		p, err := newPanel(pn)
		if err != nil {
			return err
		}
		grid[i/cols][i%cols] = p
	}
	img := vgimg.NewWith(vgimg.UseWH(panelWidth*vg.Length(cols), panelHeight*vg.Length(rows)), vgimg.UseDPI(dpi), vgimg.UseBackgroundColor(color.White))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 4}
	canvases := plot.Align(grid, tiles, dc)
	for r := range grid {
		for c := range grid[r] {
			if grid[r][c] != nil {
				grid[r][c].Draw(canvases[r][c])
			}
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	w, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(w); err != nil {
		w.Close()
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// errPoints are medians with min–max bars.
type errPoints struct {
	plotter.XYs
	plotter.YErrors
}

// newPanel builds one chart: a line with markers per series, and min–max
// bars where the runs spread.
func newPanel(pn panel) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = pn.Title
	p.X.Label.Text = pn.XLabel
	p.Y.Label.Text = pn.YLabel
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	p.X.Tick.Marker, p.Y.Tick.Marker = linearTicks{}, linearTicks{}
	if pn.LogX {
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = logTicks{}
	}
	if pn.LogY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = logTicks{}
	}
	if len(pn.XTicks) > 0 {
		ticks := make([]plot.Tick, len(pn.XTicks))
		for i, t := range pn.XTicks {
			ticks[i] = plot.Tick{Value: t.X, Label: t.Label}
		}
		p.X.Tick.Marker = plot.ConstantTicks(ticks)
	}
	yMin, yMax := math.Inf(1), math.Inf(-1)
	for i, s := range pn.Series {
		if len(s.Points) == 0 {
			continue
		}
		ep := errPoints{XYs: make(plotter.XYs, len(s.Points)), YErrors: make(plotter.YErrors, len(s.Points))}
		for j, pt := range s.Points {
			lo, hi := min(pt.Lo, pt.Y), max(pt.Hi, pt.Y)
			if pn.LogY && lo <= 0 {
				lo = pt.Y
			}
			ep.XYs[j] = plotter.XY{X: pt.X, Y: pt.Y}
			ep.YErrors[j] = struct{ Low, High float64 }{pt.Y - lo, hi - pt.Y}
			yMin, yMax = min(yMin, lo), max(yMax, hi)
		}
		line, points, err := plotter.NewLinePoints(ep.XYs)
		if err != nil {
			return nil, err
		}
		c, dashes := styleOf(s, i)
		line.Color = c
		line.Width = vg.Points(1.5)
		line.Dashes = dashes
		points.Color = c
		points.Shape = shapes[i%len(shapes)]
		bars, err := plotter.NewYErrorBars(ep)
		if err != nil {
			return nil, err
		}
		bars.Color = c
		p.Add(line, points, bars)
		p.Legend.Add(s.Name, line, points)
	}
	// Room above the data for the legend; a linear axis starts at zero so
	// that ratios read off the chart are honest.
	if !math.IsInf(yMax, -1) {
		if pn.LogY {
			p.Y.Min, p.Y.Max = yMin/1.5, yMax*3
		} else {
			p.Y.Min, p.Y.Max = 0, yMax*1.25
		}
	}
	if pn.LogX && len(pn.XTicks) > 0 {
		p.X.Min, p.X.Max = pn.XTicks[0].X/2, pn.XTicks[len(pn.XTicks)-1].X*2
	}
	return p, nil
}

var shapes = []draw.GlyphDrawer{draw.CircleGlyph{}, draw.SquareGlyph{}, draw.TriangleGlyph{}, draw.PyramidGlyph{}}

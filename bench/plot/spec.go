package main

// The JSON shape bench/report writes to plots.json (see
// bench/report/plots.go, the other side of this contract).

type plotSpec struct {
	Files []plotFile `json:"files"`
}

type plotFile struct {
	File    string  `json:"file"`
	Title   string  `json:"title"`
	Columns int     `json:"columns"`
	Panels  []panel `json:"panels"`
}

type panel struct {
	Title  string   `json:"title"`
	XLabel string   `json:"xlabel"`
	YLabel string   `json:"ylabel"`
	LogX   bool     `json:"logx"`
	LogY   bool     `json:"logy"`
	XTicks []tick   `json:"xticks"`
	Series []series `json:"series"`
}

type tick struct {
	X     float64 `json:"x"`
	Label string  `json:"label"`
}

// series.Server names the server whose colour the line takes (empty:
// Name); Dotted lines are 3-member clusters.
type series struct {
	Name   string  `json:"name"`
	Server string  `json:"server"`
	Dotted bool    `json:"dotted"`
	Points []point `json:"points"`
}

type point struct {
	X  float64 `json:"x"`
	Y  float64 `json:"y"`
	Lo float64 `json:"lo"`
	Hi float64 `json:"hi"`
}

package main

import (
	"math"
	"strconv"

	"gonum.org/v1/plot"
)

// tickLabel renders a tick value without trailing zeros: 2500, not 2500.00.
func tickLabel(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }

// linearTicks are gonum's default ticks with plain labels.
type linearTicks struct{}

func (linearTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = tickLabel(ticks[i].Value)
		}
	}
	return ticks
}

// logTicks mark 1..9 × 10^k and label 1, 2 and 5 × 10^k, or only the
// powers of ten when the axis spans more than three decades, so that a
// narrow log axis still has labels.
type logTicks struct{}

func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	if lo <= 0 || hi <= lo {
		return nil
	}
	first, last := int(math.Floor(math.Log10(lo))), int(math.Ceil(math.Log10(hi)))
	onlyDecades := last-first > 3
	var ticks []plot.Tick
	for k := first; k <= last; k++ {
		decade := math.Pow(10, float64(k))
		for m := 1; m <= 9; m++ {
			v := float64(m) * decade
			if v < lo || v > hi {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 || (!onlyDecades && (m == 2 || m == 5)) {
				t.Label = tickLabel(v)
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}

package main

import (
	"strings"
	"testing"
)

func TestLogTicks(t *testing.T) {
	tests := []struct {
		lo, hi float64
		want   string // labelled ticks
		total  int    // all ticks, labelled or not
	}{
		{8, 300, "10 20 50 100 200", 2 + 9 + 3},
		{0.2, 3, "0.2 0.5 1 2", 8 + 3},
		{0.01, 1000, "0.01 0.1 1 10 100 1000", 5*9 + 1},
		{0, 10, "", 0},
		{5, 5, "", 0},
	}
	for _, tt := range tests {
		ticks := logTicks{}.Ticks(tt.lo, tt.hi)
		var got []string
		for _, tk := range ticks {
			if tk.Value < tt.lo || tk.Value > tt.hi {
				t.Errorf("Ticks(%v, %v): tick %v outside the axis", tt.lo, tt.hi, tk.Value)
			}
			if tk.Label != "" {
				got = append(got, tk.Label)
			}
		}
		if strings.Join(got, " ") != tt.want || len(ticks) != tt.total {
			t.Errorf("Ticks(%v, %v): labels %q of %d ticks, want %q of %d", tt.lo, tt.hi, got, len(ticks), tt.want, tt.total)
		}
	}
}

func TestLinearTickLabels(t *testing.T) {
	for _, tk := range (linearTicks{}).Ticks(0, 5000) {
		if strings.Contains(tk.Label, ".") {
			t.Errorf("label %q of %v has decimals", tk.Label, tk.Value)
		}
	}
}

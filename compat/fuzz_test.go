//go:build fuzzcompat

package compat

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// TestKVDiffFuzz plays the random sequences of TestKVDiffRandom on fresh
// seeds for SETT_FUZZ_DURATION (make fuzz-compat DURATION=10m), starting at
// SETT_FUZZ_SEED (default: the clock), SETT_FUZZ_OPS operations each
// (default 500; set it in the environment of make). It stops at the first failing seed, shrunk to its
// shortest failing prefix.
func TestKVDiffFuzz(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("SETT_FUZZ_DURATION"))
	if err != nil {
		t.Fatalf("SETT_FUZZ_DURATION: %v", err)
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SETT_FUZZ_SEED"); s != "" {
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("SETT_FUZZ_SEED: %v", err)
		}
	}
	ops := 500
	if s := os.Getenv("SETT_FUZZ_OPS"); s != "" {
		if ops, err = strconv.Atoi(s); err != nil || ops < 1 {
			t.Fatalf("SETT_FUZZ_OPS: %q", s)
		}
	}
	p := newPair(t)
	start := time.Now()
	runs := 0
	for ; runs == 0 || time.Since(start) < d; seed++ {
		runs++
		if n := checkSeed(t, p, "fuzz", seed, ops); n > 0 {
			t.Fatalf("seed %d fails; shortest failing prefix: %d operations (replay: SETT_FUZZ_OPS=%d make fuzz-compat SEED=%d DURATION=1s)", seed, n, n, seed)
		}
	}
	t.Logf("%d seeds × %d operations in %v, no divergence", runs, ops, time.Since(start).Round(time.Second))
}

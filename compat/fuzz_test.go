//go:build fuzzcompat

package compat

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"
)

// TestKVDiffFuzz runs seeded random operation sequences against etcd and
// sett for SETT_FUZZ_DURATION (make fuzz-compat DURATION=10m), starting at
// SETT_FUZZ_SEED (default: the clock). A failing seed is shrunk to the
// shortest failing prefix of its sequence, which the log names.
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
	const ops = 500
	p := newPair(t)
	deadline := time.Now().Add(d)
	runs := 0
	for ; time.Now().Before(deadline); seed++ {
		runs++
		if run(t, p, seed, ops) {
			continue
		}
		// Shrink: the shortest prefix of the sequence that still fails.
		lo, hi := 0, ops // lo passes, hi fails
		for hi-lo > 1 {
			mid := (lo + hi) / 2
			if run(t, p, seed, mid) {
				lo = mid
			} else {
				hi = mid
			}
		}
		t.Fatalf("seed %d fails; shortest failing prefix: %d operations (rerun: SETT_FUZZ_SEED=%d, ops %d)", seed, hi, seed, hi)
	}
	t.Logf("%d seeds × %d operations, no divergence", runs, ops)
}

// run plays the first n operations of seed's sequence on both servers and
// reports whether every answer matched.
func run(t *testing.T, p *pair, seed uint64, n int) bool {
	name := fmt.Sprintf("seed-%d-ops-%d", seed, n)
	ok := t.Run(name, func(t *testing.T) {
		runRandom(newEnv(t, p, "/fuzz/"+name+"/"), seed, n)
	})
	p.realign(t, name)
	return ok
}

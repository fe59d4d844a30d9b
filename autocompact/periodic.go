package autocompact

import "time"

// periodicSchedule is the periodic mode's timing for a window.
type periodicSchedule struct {
	// sample is the time between two revision samples (and retries).
	sample time.Duration
	// step is the time between two compactions after the first, which
	// waits a whole window.
	step time.Duration
	// keep is how many samples span a window: the oldest is the
	// revision of one window ago.
	keep int
}

func newPeriodicSchedule(window time.Duration) periodicSchedule {
	step := min(window, maxWindowStep)
	sample := step / samplesPerStep
	return periodicSchedule{sample: sample, step: step, keep: int(window/sample) + 1}
}

// runPeriodic samples the revision every sample interval and, once the
// time since the last success reaches the wait (a window at first, a step
// after), compacts to the oldest sample, unless that revision is the last
// one compacted. A failure is retried at the next sample.
func (r *Runner) runPeriodic() {
	defer close(r.done)
	window := r.cfg.Policy.Period
	s := newPeriodicSchedule(window)
	// Invariant: samples[0] is the revision of at most one window ago.
	samples := make([]int64, 0, s.keep+1)
	var lastRev int64
	lastSuccess := r.cfg.Clock.Now()
	wait := window
	for {
		samples = append(samples, r.cfg.Rev())
		if len(samples) > s.keep {
			samples = samples[1:]
		}
		act, stopped := r.wait(s.sample)
		if stopped {
			return
		}
		if !act {
			continue
		}
		rev := samples[0]
		if r.cfg.Clock.Now().Sub(lastSuccess) < wait || rev == lastRev {
			continue
		}
		wait = s.step
		r.cfg.Logger.Info("starting auto periodic compaction", "revision", rev, "compact-period", window)
		took, err := r.compact(rev)
		if err != nil {
			r.cfg.Logger.Warn("failed auto periodic compaction", "revision", rev, "compact-period", window,
				"retry-interval", s.sample, "error", err)
			continue
		}
		r.cfg.Logger.Info("completed auto periodic compaction", "revision", rev, "compact-period", window, "took", took)
		lastRev = rev
		lastSuccess = r.cfg.Clock.Now()
	}
}

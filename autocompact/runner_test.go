package autocompact

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeMember is the revision and compaction calls a runner sees.
type fakeMember struct {
	rev atomic.Int64
	mu  sync.Mutex
	// calls are the revisions compacted to, in order, with the tick
	// (number of clock steps) at which each was asked.
	calls []call
	tick  int
	// fail makes the compactions asked at these ticks fail with err.
	fail map[int]error
}

type call struct {
	tick int
	rev  int64
}

func (m *fakeMember) compact(_ context.Context, rev int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, call{m.tick, rev})
	return m.fail[m.tick]
}

func (m *fakeMember) got() []call {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]call(nil), m.calls...)
}

// harness steps a runner: every step, it sets the revision the runner
// samples next, then advances the clock by one interval and waits for
// the runner to wait again.
type harness struct {
	t     *testing.T
	clock *fakeClock
	m     *fakeMember
	r     *Runner
}

func newHarness(t *testing.T, p Policy, fail map[int]error) *harness {
	h := &harness{t: t, clock: newFakeClock(), m: &fakeMember{fail: fail}}
	h.r = New(Config{Policy: p, Rev: h.m.rev.Load, Compact: h.m.compact, Clock: h.clock,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(h.r.Stop)
	return h
}

// step runs one interval: the runner compacts (or not) on waking, then
// samples rev and waits again.
func (h *harness) step(d time.Duration, rev int64) {
	h.t.Helper()
	h.clock.BlockUntil(h.t, 1)
	h.m.rev.Store(rev)
	h.m.mu.Lock()
	h.m.tick++
	h.m.mu.Unlock()
	h.clock.Advance(d)
	h.clock.BlockUntil(h.t, 1)
}

// revAt is the revision the harness sets at tick k: 100 plus 10 a tick.
func revAt(k int) int64 { return 100 + 10*int64(k) }

func TestParsePolicy(t *testing.T) {
	for _, tc := range []struct {
		mode, retention string
		want            Policy
		err             string
	}{
		{mode: "periodic", retention: "0", want: Policy{Mode: ModePeriodic}},
		{mode: "periodic", retention: "", want: Policy{Mode: ModePeriodic}},
		{mode: "periodic", retention: "1", want: Policy{Mode: ModePeriodic, Period: time.Hour}},
		{mode: "periodic", retention: "72", want: Policy{Mode: ModePeriodic, Period: 72 * time.Hour}},
		{mode: "periodic", retention: "30m", want: Policy{Mode: ModePeriodic, Period: 30 * time.Minute}},
		{mode: "periodic", retention: "2s", want: Policy{Mode: ModePeriodic, Period: 2 * time.Second}},
		{mode: "revision", retention: "1000", want: Policy{Mode: ModeRevision, Revisions: 1000}},
		{mode: "revision", retention: "0", want: Policy{Mode: ModeRevision}},
		// etcd reads a duration in revision mode as nanoseconds.
		{mode: "revision", retention: "1us", want: Policy{Mode: ModeRevision, Revisions: 1000}},
		{mode: "foo", retention: "1", err: `unknown auto-compaction-mode "foo"`},
		{mode: "", retention: "1", err: "undefined auto-compaction-mode"},
		{mode: "periodic", retention: "abc", err: `error parsing CompactionRetention: time: invalid duration "abc"`},
		{mode: "revision", retention: "abc", err: `error parsing CompactionRetention: time: invalid duration "abc"`},
		{mode: "periodic", retention: "-1", err: `error parsing CompactionRetention: time: missing unit in duration "-1"`},
		{mode: "revision", retention: "-5", err: `error parsing CompactionRetention: time: missing unit in duration "-5"`},
		// The mode is checked before the retention, as etcd does.
		{mode: "foo", retention: "abc", err: `unknown auto-compaction-mode "foo"`},
		// Refused by sett, accepted by etcd (see ParsePolicy).
		{mode: "periodic", retention: "-1h", err: `invalid auto-compaction-retention "-1h": must not be negative`},
		{mode: "periodic", retention: "5ns", err: `invalid auto-compaction-retention "5ns": a periodic retention must be at least 10ns`},
	} {
		got, err := ParsePolicy(tc.mode, tc.retention)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%q %q: err %v, want %q", tc.mode, tc.retention, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q %q: %+v, %v; want %+v", tc.mode, tc.retention, got, err, tc.want)
		}
		if got.Enabled() != (tc.retention != "0" && tc.retention != "") {
			t.Errorf("%q %q: enabled %v", tc.mode, tc.retention, got.Enabled())
		}
	}
}

// TestPeriodic drives the periodic mode through fake time: the first
// compaction once a whole window passed, to the revision sampled at the
// start; then one every window (an hour at most) to the oldest sample.
func TestPeriodic(t *testing.T) {
	for _, tc := range []struct {
		name   string
		window time.Duration
		ticks  int
		// sample is the expected sampling interval; want the compactions
		// (tick asked, revision).
		sample time.Duration
		want   []call
	}{
		// 5s: samples every 0.5s, 11 kept. Tick 10 (5s): the revision of
		// tick 0; tick 20: of tick 9 (5.5s before, the oldest of 11).
		{name: "5s", window: 5 * time.Second, ticks: 31, sample: 500 * time.Millisecond,
			want: []call{{10, revAt(0)}, {20, revAt(9)}, {30, revAt(19)}}},
		{name: "1h", window: time.Hour, ticks: 21, sample: 6 * time.Minute,
			want: []call{{10, revAt(0)}, {20, revAt(9)}}},
		{name: "30m", window: 30 * time.Minute, ticks: 20, sample: 3 * time.Minute,
			want: []call{{10, revAt(0)}, {20, revAt(9)}}},
		// 2h: samples every 6 minutes, 21 kept; the first compaction after
		// 2h, then every hour to the revision of 2h6m before.
		{name: "2h", window: 2 * time.Hour, ticks: 41, sample: 6 * time.Minute,
			want: []call{{20, revAt(0)}, {30, revAt(9)}, {40, revAt(19)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Policy{Mode: ModePeriodic, Period: tc.window}, nil)
			h.m.rev.Store(revAt(0))
			h.r.Resume()
			h.r.Run()
			for k := 1; k <= tc.ticks; k++ {
				h.step(tc.sample, revAt(k))
			}
			if got := h.m.got(); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("compactions %v, want %v", got, tc.want)
			}
		})
	}
}

// A periodic runner without writes compacts once, not again to the same
// revision; a failed compaction is retried at the next sample, to the
// oldest sample then; an already compacted revision is a success.
func TestPeriodicRetriesAndRepeats(t *testing.T) {
	t.Run("no writes", func(t *testing.T) {
		h := newHarness(t, Policy{Mode: ModePeriodic, Period: 5 * time.Second}, nil)
		h.m.rev.Store(50)
		h.r.Resume()
		h.r.Run()
		for k := 1; k <= 40; k++ {
			h.step(500*time.Millisecond, 50)
		}
		if got, want := h.m.got(), []call{{10, 50}}; !reflect.DeepEqual(got, want) {
			t.Fatalf("compactions %v, want %v", got, want)
		}
	})
	t.Run("failure retried", func(t *testing.T) {
		h := newHarness(t, Policy{Mode: ModePeriodic, Period: 5 * time.Second},
			map[int]error{10: errors.New("etcdserver: request timed out"), 11: fmt.Errorf("wrapped: %w", ErrCompacted)})
		h.m.rev.Store(revAt(0))
		h.r.Resume()
		h.r.Run()
		for k := 1; k <= 21; k++ {
			h.step(500*time.Millisecond, revAt(k))
		}
		// Tick 11 retries with the oldest sample then (tick 0's is
		// still kept: 11 samples); its ErrCompacted counts as success,
		// so the next is a window later.
		want := []call{{10, revAt(0)}, {11, revAt(0)}, {21, revAt(10)}}
		if got := h.m.got(); !reflect.DeepEqual(got, want) {
			t.Fatalf("compactions %v, want %v", got, want)
		}
	})
}

// A paused runner (a member that does not lead) compacts nothing but keeps
// sampling; resumed, it compacts at the next sample to the revision of a
// window ago.
func TestPeriodicPauseResume(t *testing.T) {
	h := newHarness(t, Policy{Mode: ModePeriodic, Period: 5 * time.Second}, nil)
	h.m.rev.Store(revAt(0))
	h.r.Run() // paused: a new runner waits for leadership
	for k := 1; k <= 15; k++ {
		h.step(500*time.Millisecond, revAt(k))
	}
	if got := h.m.got(); len(got) != 0 {
		t.Fatalf("paused runner compacted: %v", got)
	}
	h.r.Resume()
	for k := 16; k <= 26; k++ {
		h.step(500*time.Millisecond, revAt(k))
	}
	h.r.Pause()
	for k := 27; k <= 40; k++ {
		h.step(500*time.Millisecond, revAt(k))
	}
	// Tick 16: the samples of ticks 5..15 are kept; tick 26: a window
	// later, ticks 15..25. Paused from tick 27 on.
	want := []call{{16, revAt(5)}, {26, revAt(15)}}
	if got := h.m.got(); !reflect.DeepEqual(got, want) {
		t.Fatalf("compactions %v, want %v", got, want)
	}
}

// The revision mode compacts every 5 minutes to the current revision minus
// the retention, skipping non-positive and repeated revisions.
func TestRevision(t *testing.T) {
	for _, tc := range []struct {
		name string
		keep int64
		revs []int64 // the revision at each tick, from tick 1
		// pause and resume the runner before these ticks
		pause, resume map[int]bool
		fail          map[int]error
		want          []call
	}{
		{name: "every interval", keep: 10, revs: []int64{5, 10, 11, 30, 30, 45},
			want: []call{{3, 1}, {4, 20}, {6, 35}}},
		{name: "failure retried", keep: 100, revs: []int64{150, 150, 150},
			fail: map[int]error{1: errors.New("etcdserver: no leader"), 2: ErrCompacted},
			want: []call{{1, 50}, {2, 50}}},
		{name: "paused as follower", keep: 1, revs: []int64{10, 20, 30, 40, 50},
			pause: map[int]bool{2: true}, resume: map[int]bool{4: true},
			want: []call{{1, 9}, {4, 39}, {5, 49}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Policy{Mode: ModeRevision, Revisions: tc.keep}, tc.fail)
			h.r.Resume()
			h.r.Run()
			for i, rev := range tc.revs {
				k := i + 1
				if tc.pause[k] {
					h.r.Pause()
				}
				if tc.resume[k] {
					h.r.Resume()
				}
				// The revision mode reads the revision on waking, which
				// step sets before advancing.
				h.step(5*time.Minute, rev)
			}
			if got := h.m.got(); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("compactions %v, want %v", got, tc.want)
			}
		})
	}
}

// Before 5 minutes, the revision mode does nothing.
func TestRevisionInterval(t *testing.T) {
	h := newHarness(t, Policy{Mode: ModeRevision, Revisions: 1}, nil)
	h.m.rev.Store(100)
	h.r.Resume()
	h.r.Run()
	h.step(5*time.Minute-time.Second, 100)
	if got := h.m.got(); len(got) != 0 {
		t.Fatalf("compacted before 5 minutes: %v", got)
	}
	h.step(time.Second, 100)
	if got, want := h.m.got(), []call{{2, 99}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("compactions %v, want %v", got, want)
	}
}

// Stop ends the loop, canceling a compaction in flight; a disabled policy
// runs nothing.
func TestStop(t *testing.T) {
	clock := newFakeClock()
	started := make(chan struct{})
	r := New(Config{Policy: Policy{Mode: ModeRevision, Revisions: 1}, Rev: func() int64 { return 10 }, Clock: clock,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Compact: func(ctx context.Context, rev int64) error {
			close(started)
			<-ctx.Done()
			return ctx.Err()
		}})
	r.Resume()
	r.Run()
	clock.BlockUntil(t, 1)
	clock.Advance(revisionInterval)
	<-started
	done := make(chan struct{})
	go func() { r.Stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not return")
	}

	off := New(Config{Policy: Policy{Mode: ModePeriodic}, Rev: func() int64 { t.Error("disabled runner read the revision"); return 0 }})
	off.Run()
	off.Stop()
}

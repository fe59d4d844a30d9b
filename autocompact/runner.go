package autocompact

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// ErrCompacted is the error of a compaction to a revision already
// compacted; the runner counts it as a success, as etcd does. Compact
// functions return an error that errors.Is it.
var ErrCompacted = errors.New("mvcc: required revision has been compacted")

// Clock is the runner's time: the real one in a server, a fake one in
// tests.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Config is what a Runner compacts with.
type Config struct {
	Policy Policy
	// Rev is the member's current revision.
	Rev func() int64
	// Compact compacts the history to rev through raft (a client's
	// Compact request) and returns once this member applied it.
	Compact func(ctx context.Context, rev int64) error
	// Clock defaults to the real one.
	Clock  Clock
	Logger *slog.Logger
}

// Runner runs a Policy. It is created paused: the server resumes it while
// the member leads.
type Runner struct {
	cfg    Config
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	paused  bool
	started bool
}

// revisionInterval is how often the revision mode compacts (etcd's).
const revisionInterval = 5 * time.Minute

// maxWindowStep caps the periodic mode's compaction interval: a window
// longer than an hour is still compacted every hour, sampled every six
// minutes.
const maxWindowStep = time.Hour

// samplesPerStep is how many revisions the periodic mode samples per
// compaction interval.
const samplesPerStep = 10

// New returns a paused runner; Run starts it.
func New(cfg Config) *Runner {
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	r := &Runner{cfg: cfg, done: make(chan struct{}), paused: true}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	return r
}

// Run starts the policy's loop in the background. A disabled policy runs
// nothing.
func (r *Runner) Run() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started {
		return
	}
	r.started = true
	switch {
	case !r.cfg.Policy.Enabled():
		close(r.done)
	case r.cfg.Policy.Mode == ModeRevision:
		go r.runRevision()
	default:
		go r.runPeriodic()
	}
}

// Stop ends the loop (canceling a compaction in flight) and waits for it.
func (r *Runner) Stop() {
	r.cancel()
	r.mu.Lock()
	started := r.started
	r.mu.Unlock()
	if started {
		<-r.done
	}
}

// Pause stops compacting until Resume; the periodic mode keeps sampling
// revisions meanwhile, so that it compacts to the right one on resuming.
func (r *Runner) Pause() { r.setPaused(true) }

// Resume compacts again after Pause (or from the start).
func (r *Runner) Resume() { r.setPaused(false) }

func (r *Runner) setPaused(p bool) {
	r.mu.Lock()
	r.paused = p
	r.mu.Unlock()
}

func (r *Runner) isPaused() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.paused
}

// wait waits d and reports whether the runner should act: false when it
// stopped (ctx) or is paused.
func (r *Runner) wait(d time.Duration) (act, stopped bool) {
	select {
	case <-r.ctx.Done():
		return false, true
	case <-r.cfg.Clock.After(d):
		return !r.isPaused(), false
	}
}

// compact runs one compaction and reports whether it succeeded (an already
// compacted revision counts).
func (r *Runner) compact(rev int64) (time.Duration, error) {
	start := r.cfg.Clock.Now()
	err := r.cfg.Compact(r.ctx, rev)
	if errors.Is(err, ErrCompacted) {
		err = nil
	}
	return r.cfg.Clock.Now().Sub(start), err
}

package lease

import (
	"container/heap"
	"context"
	"errors"
	"log/slog"
	"math"
	"os"
	"sort"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/status"

	"github.com/sett-dev/sett/storage"
)

// Errors of the lessor's own (not the write path's).
var (
	// ErrLeaseNotFound: no such lease, or it expired and has been revoked.
	ErrLeaseNotFound = errors.New("lease not found")
	// ErrNotPrimary: this member does not run expiry (etcd's error text).
	ErrNotPrimary = errors.New("not a primary lessor")
	// ErrStopped: the lessor is stopping.
	ErrStopped = errors.New("lessor stopped")
)

// Proposer orders a command through the write path and returns its
// response once applied, or its error.
type Proposer func(ctx context.Context, req *pb.InternalRaftRequest) (any, error)

// Store is what the lessor reads from storage.
type Store interface {
	LeaseStates() ([]storage.Lease, error)
	LeaseKeys(id int64) ([][]byte, error)
	ObserveLeases(storage.LeaseObserver)
}

// CheckpointIntervalEnv, if set to a Go duration, replaces the default
// checkpoint interval (for tests that cannot wait five minutes).
const CheckpointIntervalEnv = "SETT_LEASE_CHECKPOINT_INTERVAL"

// Config tunes the lessor. Zero values take etcd's defaults.
type Config struct {
	// MinTTL is the shortest TTL a lease is kept with (etcd: 1.5 election
	// timeouts, rounded up: 2 s).
	MinTTL int64
	// CheckpointInterval is how often remaining TTLs are checkpointed
	// (etcd: 5 minutes).
	CheckpointInterval time.Duration
	// RetryInterval is how long an expired lease whose revoke did not go
	// through waits before it is revoked again (etcd: its request timeout,
	// 7 s).
	RetryInterval time.Duration
	// Tick is the longest the expiry loop sleeps (etcd: 500 ms).
	Tick time.Duration
	// PromoteExtend is added to every lease's TTL when this member starts
	// running expiry (etcd: the election timeout, 1 s).
	PromoteExtend time.Duration
	// RevokeRate is the most leases revoked per second (etcd: 1000).
	RevokeRate int
	// MaxPendingRevokes bounds concurrent revoke proposals (etcd: 16).
	MaxPendingRevokes int
	Logger            *slog.Logger
}

// As etcd: at most 1000 leases per LeaseCheckpoint command, and 1000
// commands per second.
const (
	maxCheckpointBatch = 1000
	checkpointRate     = 1000
)

func (c *Config) setDefaults() {
	if c.MinTTL <= 0 {
		c.MinTTL = 2
	}
	if c.CheckpointInterval <= 0 {
		c.CheckpointInterval = 5 * time.Minute
		if d, err := time.ParseDuration(os.Getenv(CheckpointIntervalEnv)); err == nil && d > 0 {
			c.CheckpointInterval = d
		}
	}
	if c.RetryInterval <= 0 {
		c.RetryInterval = 7 * time.Second
	}
	if c.Tick <= 0 {
		c.Tick = 500 * time.Millisecond
	}
	if c.PromoteExtend <= 0 {
		c.PromoteExtend = time.Second
	}
	if c.RevokeRate <= 0 {
		c.RevokeRate = 1000
	}
	if c.MaxPendingRevokes <= 0 {
		c.MaxPendingRevokes = 16
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Lessor tracks lease expiry. See the package documentation.
type Lessor struct {
	cfg   Config
	store Store
	log   *slog.Logger

	mu      sync.Mutex
	leases  map[int64]*lease
	expq    queue // expiries (primary only)
	cpq     queue // next checkpoints (primary only)
	primary bool
	demotec chan struct{} // closed on Demote; nil while not primary
	propose Proposer

	// cpMu orders checkpoint proposals with renewals, so that a checkpoint
	// computed before a renewal is never applied after it.
	cpMu sync.Mutex

	expiredc  chan []int64
	wakec     chan struct{}
	stopc     chan struct{}
	stopCtx   context.Context
	stopAll   context.CancelFunc
	wg        sync.WaitGroup
	startOnce sync.Once
	stopOnce  sync.Once
}

type lease struct {
	id  int64
	ttl int64
	// remaining is the last checkpointed remaining TTL in seconds, 0 if
	// none: it, else ttl, is what the lease gets when promoted.
	remaining int64
	// expiry is when the lease expires; zero while not primary (never).
	expiry  time.Time
	revokec chan struct{} // closed once the lease is revoked
	exp, cp *item         // entries in expq and cpq, or nil
}

func (l *lease) promoteTTL() int64 {
	if l.remaining > 0 {
		return l.remaining
	}
	return l.ttl
}

// New loads the leases in store and starts following its grants and
// revokes. Nothing expires before Start.
func New(cfg Config, store Store) (*Lessor, error) {
	cfg.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	le := &Lessor{
		cfg:      cfg,
		store:    store,
		log:      cfg.Logger.With("component", "lessor"),
		leases:   map[int64]*lease{},
		expiredc: make(chan []int64, 16),
		wakec:    make(chan struct{}, 1),
		stopc:    make(chan struct{}),
		stopCtx:  ctx,
		stopAll:  cancel,
	}
	le.mu.Lock()
	defer le.mu.Unlock()
	states, err := store.LeaseStates()
	if err != nil {
		cancel()
		return nil, err
	}
	for _, s := range states {
		le.leases[s.ID] = &lease{
			id:        s.ID,
			ttl:       max(s.TTL, cfg.MinTTL),
			remaining: s.Remaining,
			revokec:   make(chan struct{}),
		}
	}
	store.ObserveLeases(le.applied)
	return le, nil
}

// Start makes this lessor the primary (see Promote) and starts expiry and
// checkpoints, which it proposes through p.
func (le *Lessor) Start(p Proposer) {
	le.Run(p)
	le.Promote(le.cfg.PromoteExtend)
}

// Run starts expiry and checkpoints, proposed through p, for whenever this
// lessor is the primary (the member leads: see Promote and Demote).
func (le *Lessor) Run(p Proposer) {
	le.startOnce.Do(func() {
		le.mu.Lock()
		le.propose = p
		le.mu.Unlock()
		le.wg.Add(2)
		go le.run()
		go le.revoker()
	})
}

// PromoteExtend is how much longer than their TTL leases live after this
// lessor becomes primary.
func (le *Lessor) PromoteExtend() time.Duration { return le.cfg.PromoteExtend }

// Stop stops expiry and checkpoints and waits for proposals in flight.
// Renewals fail with ErrStopped afterwards.
func (le *Lessor) Stop() {
	le.stopOnce.Do(func() {
		close(le.stopc)
		le.stopAll()
	})
	le.wg.Wait()
}

// Stopped is closed when Stop begins.
func (le *Lessor) Stopped() <-chan struct{} { return le.stopc }

// Promote makes this lessor the primary: from now, every lease expires
// after its checkpointed remaining TTL, else its full TTL, plus extend;
// more than 750 expiries in one second are spread out (etcd's rules).
func (le *Lessor) Promote(extend time.Duration) {
	le.mu.Lock()
	defer le.mu.Unlock()
	le.primary = true
	le.demotec = make(chan struct{})
	now := time.Now()
	all := make([]*lease, 0, len(le.leases))
	for _, l := range le.leases {
		l.expiry = now.Add(extend + seconds(l.promoteTTL()))
		all = append(all, l)
	}
	if len(all) >= le.cfg.RevokeRate {
		le.spread(all)
	}
	for _, l := range all {
		le.setExpiry(l, l.expiry)
		le.scheduleCheckpoint(l, now)
	}
	le.wake()
}

// spread delays expiries so that no more than 3/4 of the revoke rate fall
// into any one second after the first expiry of a run.
func (le *Lessor) spread(all []*lease) {
	sort.Slice(all, func(i, j int) bool { return all[i].expiry.Before(all[j].expiry) })
	perSecond := max(1, 3*le.cfg.RevokeRate/4)
	start, end, n := all[0].expiry, all[0].expiry.Add(time.Second), 0
	for _, l := range all {
		if l.expiry.After(end) {
			start, end, n = l.expiry, l.expiry.Add(time.Second), 1
			continue
		}
		n++
		if n <= perSecond {
			continue
		}
		at := start.Add(time.Duration(float64(time.Second) * float64(n) / float64(perSecond)))
		if at.After(l.expiry) {
			l.expiry = at
		}
		end = l.expiry
	}
}

// Demote stops expiry: leases never expire until the next Promote.
func (le *Lessor) Demote() {
	le.mu.Lock()
	defer le.mu.Unlock()
	for _, l := range le.leases {
		l.expiry = time.Time{}
		l.exp, l.cp = nil, nil
	}
	le.expq, le.cpq = nil, nil
	le.primary = false
	if le.demotec != nil {
		close(le.demotec)
		le.demotec = nil
	}
}

// applied is the storage observer: grants and revokes, as committed.
func (le *Lessor) applied(changes []storage.LeaseChange) {
	le.mu.Lock()
	defer le.mu.Unlock()
	now := time.Now()
	for _, c := range changes {
		if old := le.leases[c.ID]; old != nil {
			le.remove(old)
		}
		if c.Revoked {
			continue
		}
		l := &lease{id: c.ID, ttl: max(c.TTL, le.cfg.MinTTL), revokec: make(chan struct{})}
		le.leases[c.ID] = l
		if le.primary {
			le.setExpiry(l, now.Add(seconds(l.ttl)))
			le.scheduleCheckpoint(l, now)
		}
	}
}

func (le *Lessor) remove(l *lease) {
	delete(le.leases, l.id)
	if l.exp != nil {
		heap.Remove(&le.expq, l.exp.index)
		l.exp = nil
	}
	if l.cp != nil {
		heap.Remove(&le.cpq, l.cp.index)
		l.cp = nil
	}
	close(l.revokec)
}

func (le *Lessor) setExpiry(l *lease, at time.Time) {
	l.expiry = at
	if l.exp == nil {
		l.exp = &item{id: l.id, at: at}
		heap.Push(&le.expq, l.exp)
	} else {
		l.exp.at = at
		heap.Fix(&le.expq, l.exp.index)
	}
}

// scheduleCheckpoint plans l's next checkpoint if its TTL is longer than
// the interval and none is planned.
func (le *Lessor) scheduleCheckpoint(l *lease, now time.Time) {
	if l.cp != nil || l.promoteTTL() <= int64(le.cfg.CheckpointInterval.Seconds()) {
		return
	}
	l.cp = &item{id: l.id, at: now.Add(le.cfg.CheckpointInterval)}
	heap.Push(&le.cpq, l.cp)
}

func (le *Lessor) wake() {
	select {
	case le.wakec <- struct{}{}:
	default:
	}
}

// Renew refreshes lease id to its full TTL and returns the TTL. A lease
// that has expired but is not revoked yet is waited for, and then is not
// found, as in etcd.
func (le *Lessor) Renew(ctx context.Context, id int64) (int64, error) {
	le.mu.Lock()
	if !le.primary {
		le.mu.Unlock()
		return -1, ErrNotPrimary
	}
	l := le.leases[id]
	if l == nil {
		le.mu.Unlock()
		return -1, ErrLeaseNotFound
	}
	demotec, expired := le.demotec, !time.Now().Before(l.expiry)
	le.mu.Unlock()
	if expired {
		select {
		case <-l.revokec:
			return -1, ErrLeaseNotFound
		case <-demotec:
			return -1, ErrNotPrimary
		case <-le.stopc:
			return -1, ErrStopped
		case <-ctx.Done():
			return -1, ctx.Err()
		}
	}

	le.cpMu.Lock()
	defer le.cpMu.Unlock()
	le.mu.Lock()
	if cur := le.leases[id]; cur != l {
		le.mu.Unlock()
		return -1, ErrLeaseNotFound // revoked meanwhile
	}
	clear, propose := l.remaining > 0, le.propose
	le.mu.Unlock()
	if clear && propose == nil {
		return -1, ErrNotPrimary
	}
	select {
	case <-le.stopc:
		return -1, ErrStopped
	default:
	}
	// A renewed lease must not come back from a restart with the
	// remaining TTL of an older checkpoint.
	if clear {
		_, err := propose(ctx, checkpointRequest(&pb.LeaseCheckpoint{ID: id, Remaining_TTL: 0}))
		if err != nil {
			return -1, err
		}
	}
	le.mu.Lock()
	defer le.mu.Unlock()
	if cur := le.leases[id]; cur != l {
		return -1, ErrLeaseNotFound
	}
	if !le.primary {
		return -1, ErrNotPrimary
	}
	now := time.Now()
	if clear {
		l.remaining = 0
		le.scheduleCheckpoint(l, now)
	}
	le.setExpiry(l, now.Add(seconds(l.ttl)))
	return l.ttl, nil
}

// Lookup reports lease id's remaining time, truncated to whole seconds as
// etcd's TimeToLive does (it is negative for a lease expired but not yet
// revoked), and its granted TTL.
func (le *Lessor) Lookup(id int64) (remaining, granted int64, ok bool) {
	le.mu.Lock()
	defer le.mu.Unlock()
	l := le.leases[id]
	if l == nil {
		return 0, 0, false
	}
	if l.expiry.IsZero() {
		return int64(time.Duration(math.MaxInt64).Seconds()), l.ttl, true
	}
	return int64(time.Until(l.expiry).Seconds()), l.ttl, true
}

// Keys lists the keys attached to lease id, in key order.
func (le *Lessor) Keys(id int64) ([][]byte, error) { return le.store.LeaseKeys(id) }

// Leases lists the lease IDs, soonest expiry first (as etcd's LeaseLeases
// does), ties in ID order.
func (le *Lessor) Leases() []int64 {
	type entry struct {
		id     int64
		expiry time.Time
	}
	le.mu.Lock()
	all := make([]entry, 0, len(le.leases))
	for _, l := range le.leases {
		all = append(all, entry{l.id, l.expiry})
	}
	le.mu.Unlock()
	sort.Slice(all, func(i, j int) bool {
		a, b := all[i], all[j]
		if !a.expiry.Equal(b.expiry) {
			// A zero expiry (never) sorts last.
			if a.expiry.IsZero() || b.expiry.IsZero() {
				return b.expiry.IsZero()
			}
			return a.expiry.Before(b.expiry)
		}
		return a.id < b.id
	})
	ids := make([]int64, len(all))
	for i, l := range all {
		ids[i] = l.id
	}
	return ids
}

// run is the expiry and checkpoint loop.
func (le *Lessor) run() {
	defer le.wg.Done()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
		case <-le.wakec:
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		case <-le.stopc:
			return
		}
		le.revokeExpired()
		le.checkpointDue()
		timer.Reset(le.nextWake())
	}
}

// nextWake is the time until the earliest expiry or checkpoint, at most a
// tick. Work still due now was held back by the rate limits: it waits for
// the next tick.
func (le *Lessor) nextWake() time.Duration {
	le.mu.Lock()
	defer le.mu.Unlock()
	now := time.Now()
	for _, q := range []queue{le.expq, le.cpq} {
		if len(q) > 0 && !q[0].at.After(now) {
			return le.cfg.Tick
		}
	}
	d := le.cfg.Tick
	for _, q := range []queue{le.expq, le.cpq} {
		if len(q) > 0 {
			d = min(d, q[0].at.Sub(now)+time.Millisecond)
		}
	}
	return d
}

// revokeExpired hands up to half a second's worth of revoke rate of
// expired leases to the revoker.
func (le *Lessor) revokeExpired() {
	le.mu.Lock()
	if !le.primary {
		le.mu.Unlock()
		return
	}
	now := time.Now()
	limit := max(1, le.cfg.RevokeRate/2)
	var ids []int64
	for len(le.expq) > 0 && len(ids) < limit {
		top := le.expq[0]
		if top.at.After(now) {
			break
		}
		l := le.leases[top.id]
		// Looked at again after the retry interval, should the revoke
		// not go through.
		top.at = now.Add(le.cfg.RetryInterval)
		heap.Fix(&le.expq, 0)
		if !l.expiry.After(now) {
			ids = append(ids, l.id)
		}
	}
	le.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	select {
	case le.expiredc <- ids:
	default:
		// The revoker is behind; these are retried after the interval.
		le.log.Warn("lease revokes are falling behind", "leases", len(ids))
	}
}

// revoker proposes the revokes of expired leases, a few at a time.
func (le *Lessor) revoker() {
	defer le.wg.Done()
	sem := make(chan struct{}, le.cfg.MaxPendingRevokes)
	var inflight sync.WaitGroup
	defer inflight.Wait()
	for {
		var ids []int64
		select {
		case ids = <-le.expiredc:
		case <-le.stopc:
			return
		}
		le.mu.Lock()
		propose := le.propose
		le.mu.Unlock()
		for _, id := range ids {
			select {
			case sem <- struct{}{}:
			case <-le.stopc:
				return
			}
			inflight.Add(1)
			go func() {
				defer func() { <-sem; inflight.Done() }()
				ctx, cancel := context.WithTimeout(le.stopCtx, le.cfg.RetryInterval)
				defer cancel()
				_, err := propose(ctx, &pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: id}})
				if err != nil && !isLeaseNotFound(err) && le.stopCtx.Err() == nil {
					le.log.Warn("failed to revoke an expired lease; will retry", "lease-id", id, "err", err)
				}
			}()
		}
	}
}

// checkpointDue proposes the checkpoints that are due, in batches of up to
// 1000 leases, at most half a second's worth of etcd's checkpoint rate.
func (le *Lessor) checkpointDue() {
	le.cpMu.Lock()
	defer le.cpMu.Unlock()
	for range checkpointRate / 2 {
		le.mu.Lock()
		if !le.primary || le.propose == nil {
			le.mu.Unlock()
			return
		}
		propose := le.propose
		now := time.Now()
		due, cps := le.dueCheckpoints(now, maxCheckpointBatch)
		le.mu.Unlock()
		if len(cps) == 0 {
			return
		}
		_, err := propose(le.stopCtx, checkpointRequest(cps...))
		le.mu.Lock()
		now = time.Now()
		for i, l := range due {
			if le.leases[l.id] != l {
				continue
			}
			if err == nil {
				l.remaining = cps[i].Remaining_TTL
			}
			le.scheduleCheckpoint(l, now)
		}
		le.mu.Unlock()
		if err != nil {
			if le.stopCtx.Err() == nil {
				le.log.Warn("failed to checkpoint lease TTLs; will retry", "leases", len(cps), "err", err)
			}
			return
		}
		if len(cps) < maxCheckpointBatch {
			return
		}
	}
}

// dueCheckpoints pops the checkpoints due at now, up to limit.
func (le *Lessor) dueCheckpoints(now time.Time, limit int) ([]*lease, []*pb.LeaseCheckpoint) {
	var due []*lease
	var cps []*pb.LeaseCheckpoint
	for len(le.cpq) > 0 && len(cps) < limit {
		top := le.cpq[0]
		if top.at.After(now) {
			break
		}
		heap.Pop(&le.cpq)
		l := le.leases[top.id]
		l.cp = nil
		if !now.Before(l.expiry) {
			continue // expired: about to be revoked
		}
		remaining := int64(math.Ceil(l.expiry.Sub(now).Seconds()))
		if remaining >= l.ttl {
			// Just renewed: nothing to record yet; look again later.
			le.scheduleCheckpoint(l, now)
			continue
		}
		due = append(due, l)
		cps = append(cps, &pb.LeaseCheckpoint{ID: l.id, Remaining_TTL: remaining})
	}
	return due, cps
}

func checkpointRequest(cps ...*pb.LeaseCheckpoint) *pb.InternalRaftRequest {
	return &pb.InternalRaftRequest{LeaseCheckpoint: &pb.LeaseCheckpointRequest{Checkpoints: cps}}
}

func isLeaseNotFound(err error) bool {
	if errors.Is(err, storage.ErrLeaseNotFound) || errors.Is(err, ErrLeaseNotFound) {
		return true
	}
	s, ok := status.FromError(err)
	want := status.Convert(rpctypes.ErrGRPCLeaseNotFound)
	return ok && s.Code() == want.Code() && s.Message() == want.Message()
}

func seconds(n int64) time.Duration { return time.Duration(n) * time.Second }

// item is an entry of a time-ordered queue.
type item struct {
	id    int64
	at    time.Time
	index int
}

// queue is a min-heap of items by time.
type queue []*item

func (q queue) Len() int           { return len(q) }
func (q queue) Less(i, j int) bool { return q[i].at.Before(q[j].at) }
func (q queue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index = i
	q[j].index = j
}
func (q *queue) Push(x any) {
	it := x.(*item)
	it.index = len(*q)
	*q = append(*q, it)
}
func (q *queue) Pop() any {
	old := *q
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	it.index = -1
	return it
}

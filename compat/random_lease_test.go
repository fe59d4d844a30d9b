package compat

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Leases in random sequences.
//
// Expiry is timing, and etcd and sett expire a lease up to a second apart:
// were a lease left to expire while operations go on, the revision its
// deletions take would differ between the servers. So every granted lease
// is kept alive in the background (leaseKeeper) until the sequence decides
// to let one expire; it then waits, writing nothing, until the lease is
// gone on both servers, and compares what the expiry left. Exactly one
// lease expires at a time, so the revisions stay identical.

// keepAliveEvery is the background renewal period: a lease of the minimum
// TTL (2 s) survives a stall of 1.75 s.
const keepAliveEvery = 250 * time.Millisecond

// leaseKeeper renews a set of leases on both servers.
type leaseKeeper struct {
	mu   sync.Mutex
	ids  map[int64]bool
	lost []string // leases a server reported gone while they were kept alive

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startKeeper(t *testing.T, p *pair) *leaseKeeper {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	k := &leaseKeeper{ids: map[int64]bool{}, cancel: cancel}
	for _, s := range []*server{p.etcd, p.sett} {
		st, err := s.lease.LeaseKeepAlive(ctx)
		if err != nil {
			cancel()
			t.Fatalf("%s: LeaseKeepAlive: %v", s.kind, err)
		}
		k.wg.Add(2)
		go func() {
			defer k.wg.Done()
			tick := time.NewTicker(keepAliveEvery)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				for _, id := range k.kept() {
					if st.Send(&pb.LeaseKeepAliveRequest{ID: id}) != nil {
						return
					}
				}
			}
		}()
		go func() {
			defer k.wg.Done()
			for {
				r, err := st.Recv()
				if err != nil {
					return
				}
				if r.TTL <= 0 {
					k.mu.Lock()
					if k.ids[r.ID] {
						k.lost = append(k.lost, fmt.Sprintf("%s: lease %x gone although kept alive every %v", s.kind, r.ID, keepAliveEvery))
					}
					k.mu.Unlock()
				}
			}
		}()
	}
	return k
}

func (k *leaseKeeper) kept() []int64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	ids := make([]int64, 0, len(k.ids))
	for id := range k.ids {
		ids = append(ids, id)
	}
	return ids
}

func (k *leaseKeeper) add(id int64) {
	k.mu.Lock()
	k.ids[id] = true
	k.mu.Unlock()
}

func (k *leaseKeeper) remove(id int64) {
	k.mu.Lock()
	delete(k.ids, id)
	k.mu.Unlock()
}

func (k *leaseKeeper) stop() {
	k.cancel()
	k.wg.Wait()
}

// report logs leases lost despite the renewals: on a loaded machine a
// stall longer than the TTL explains it (and the answers that follow
// differ); otherwise it is the server's fault, which the comparisons show.
func (k *leaseKeeper) report(t *testing.T) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, l := range k.lost {
		t.Log(l)
	}
}

// grant grants a pool ID with a short TTL (to expire later in the
// sequence), a long one, or one too large.
func (g *randGen) grant() {
	id := g.leases[g.r.IntN(len(g.leases))]
	var ttl int64
	switch k := g.r.IntN(10); {
	case k < 4:
		ttl = int64(1 + g.r.IntN(3)) // 1 is raised to etcd's minimum, 2
	case k < 9:
		ttl = []int64{60, 3600}[g.r.IntN(2)]
	default:
		ttl = 9000000001
	}
	resp, err := g.e.Grant(&pb.LeaseGrantRequest{ID: id, TTL: ttl})
	if err == nil {
		g.live[id] = resp.TTL
		g.keeper.add(id)
	}
}

func (g *randGen) revoke() {
	id := g.leases[g.r.IntN(len(g.leases))]
	g.keeper.remove(id)
	if _, err := g.e.Revoke(&pb.LeaseRevokeRequest{ID: id}); err == nil {
		delete(g.live, id)
	} else if _, ok := g.live[id]; ok {
		g.keeper.add(id)
	}
}

// shortTTL is the longest TTL expire lets run out.
const shortTTL = 3

// expire lets one short lease expire and waits, writing nothing, until
// it is gone on both servers; then it compares the key space. It returns
// false if no short lease is live.
func (g *randGen) expire() bool {
	var short []int64
	for id, ttl := range g.live {
		if ttl <= shortTTL {
			short = append(short, id)
		}
	}
	if len(short) == 0 {
		return false
	}
	slices.Sort(short)
	id := short[g.r.IntN(len(short))]
	e := g.e
	e.step++
	ttl := g.live[id]
	g.keeper.remove(id)
	start := time.Now()
	deadline := start.Add(time.Duration(ttl)*time.Second + 10*time.Second)
	var gone [2]time.Duration
	for (gone[0] == 0 || gone[1] == 0) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		for i, s := range []*server{e.p.etcd, e.p.sett} {
			if gone[i] != 0 {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			r, err := s.lease.LeaseTimeToLive(ctx, &pb.LeaseTimeToLiveRequest{ID: id})
			cancel()
			if err == nil && r.TTL == -1 {
				gone[i] = time.Since(start)
			}
		}
	}
	delete(g.live, id)
	e.stats["expiry"]++
	switch {
	case gone[0] == 0:
		e.t.Fatalf("test bug (%s): etcd did not expire lease %x (TTL %d) in %v", e.ctx, id, ttl, time.Since(start))
	case gone[1] == 0:
		e.fails++
		e.p.diverged = true
		e.t.Fatalf("MISMATCH (%s, step %d) lease %x no longer renewed: etcd expired it after %v, sett still had it after %v",
			e.ctx, e.step, id, gone[0].Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	}
	e.Range(&pb.RangeRequest{Key: e.k(""), RangeEnd: prefixEnd(e.k(""))})
	return true
}

func (g *randGen) timeToLive() {
	id := g.leases[g.r.IntN(len(g.leases))]
	if g.r.IntN(8) == 0 {
		id = 0x7777 // never granted
	}
	g.e.TimeToLive(&pb.LeaseTimeToLiveRequest{ID: id, Keys: g.r.IntN(2) == 0})
}

// keepAliveOnce renews a pool lease on a compared keep-alive stream (its
// answer is the granted TTL, or 0 for a lease that does not exist).
func (g *randGen) keepAliveOnce() {
	id := g.leases[g.r.IntN(len(g.leases))]
	if g.ka == nil {
		g.ka = g.e.openKeepAlives()
	}
	g.ka.send(id)
}

// leasesSorted compares LeaseLeases answers as sets: their order is by
// expiry, which the background renewals make timing.
func (e *env) leasesSorted() (*pb.LeaseLeasesResponse, error) {
	e.t.Helper()
	r := &pb.LeaseLeasesRequest{}
	return call(e, "LeaseLeases", r, func(ctx context.Context, s *server) (*pb.LeaseLeasesResponse, error) {
		resp, err := s.lease.LeaseLeases(ctx, r)
		if err == nil {
			sort.Slice(resp.Leases, func(i, j int) bool { return resp.Leases[i].ID < resp.Leases[j].ID })
		}
		return resp, err
	})
}

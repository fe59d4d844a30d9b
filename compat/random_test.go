package compat

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// randomSeeds and randomOps are what `make test` plays (TestKVDiffRandom);
// `make fuzz-compat` plays the same generator on fresh seeds.
var randomSeeds = []uint64{1, 2, 3, 4}

const randomOps = 400

// TestKVDiffRandom plays seeded random sequences mixing every KV operation
// with leases (grant, revoke, keep-alive, expiry, keys attached) and
// watches (random start revisions, ranges and filters) on one pair of
// servers. A failing seed is shrunk to its shortest failing prefix.
func TestKVDiffRandom(t *testing.T) {
	p := newPair(t)
	for _, seed := range randomSeeds {
		checkSeed(t, p, "rnd", seed, randomOps)
	}
	t.Run("HeaderIDs", func(t *testing.T) { p.checkIDs(t) })
}

// checkSeed plays the first n operations of seed's sequence; if an answer
// differs, it shrinks the sequence to its shortest failing prefix and
// reports the seed and that length, which it returns (0: the seed passed).
func checkSeed(t *testing.T, p *pair, group string, seed uint64, n int) int {
	t.Helper()
	if playSeed(t, p, group, seed, n) {
		return 0
	}
	lo, hi := 0, n // a prefix of lo operations passes, of hi fails
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if playSeed(t, p, group, seed, mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	t.Errorf("seed %d fails; shortest failing prefix: %d operations (replay: SETT_FUZZ_OPS=%d make fuzz-compat SEED=%d DURATION=1s)", seed, hi, hi, seed)
	return hi
}

// playSeed plays the first n operations of seed's sequence in a subtest,
// under a key prefix of its own, and realigns the pair afterwards.
func playSeed(t *testing.T, p *pair, group string, seed uint64, n int) bool {
	t.Helper()
	name := fmt.Sprintf("seed-%d-ops-%d", seed, n)
	ok := t.Run(name, func(t *testing.T) {
		runRandom(newEnv(t, p, "/"+group+"/"+name+"/"), seed, n)
	})
	p.realign(t, name)
	return ok
}

// randGen draws one seed's operations. Its choices depend only on the
// seed and on etcd's answers, never on timing, so a seed replays the same
// sequence (up to the revision the pair starts from).
type randGen struct {
	e    *env
	r    *rand.Rand
	seed uint64
	op   int // index of the operation being drawn

	// leases is the pool of client-chosen lease IDs (the same on both
	// servers); live maps those etcd has granted to their TTL.
	leases []int64
	live   map[int64]int64
	keeper *leaseKeeper
	ka     *keepAlives // compared keep-alive stream, opened on first use

	streams    []*randStream
	compactRev int64 // newest compaction etcd accepted in this sequence
	// unsettled: a watcher may still be catching up from the past (etcd
	// does that every 100 ms), so a compaction or cancel must wait.
	unsettled bool
}

const randKeys = 20

func newRandGen(e *env, seed uint64) *randGen {
	g := &randGen{e: e, r: rand.New(rand.NewPCG(seed, 0x5e77)), seed: seed, live: map[int64]int64{}}
	for i := range 5 {
		g.leases = append(g.leases, int64(seed)<<20|int64(i+1))
	}
	g.keeper = startKeeper(e.t, e.p)
	return g
}

// runRandom plays the first n operations of seed's sequence, then compares
// the final state and every watch stream in full.
func runRandom(e *env, seed uint64, n int) {
	g := newRandGen(e, seed)
	defer g.cleanup()
	for i := range n {
		g.op = i
		e.ctx = fmt.Sprintf("seed %d op %d", seed, i)
		g.step()
	}
	e.ctx = fmt.Sprintf("seed %d final", seed)
	cur := e.rev()
	for back := range int64(10) {
		e.Range(&pb.RangeRequest{Key: e.k(""), RangeEnd: prefixEnd(e.k("")), Revision: cur - back})
	}
	g.compareWatches()
	g.keeper.report(e.t)
	e.logStats()
}

// step draws and plays one operation.
func (g *randGen) step() {
	e := g.e
	switch k := g.r.IntN(100); {
	case k < 18:
		e.Range(g.rangeReq())
	case k < 36:
		e.Put(g.putReq())
	case k < 44:
		e.Delete(g.delReq())
	case k < 70:
		e.Txn(g.txnReq(0))
	case k < 73:
		g.compact()
	case k < 77:
		g.grant()
	case k < 79:
		g.revoke()
	case k < 81:
		if !g.expire() {
			g.timeToLive()
		}
	case k < 83:
		g.timeToLive()
	case k < 84:
		e.leasesSorted()
	case k < 86:
		g.keepAliveOnce()
	case k < 93:
		g.watchCreate()
	case k < 94:
		g.watchCancel()
	default:
		e.Put(g.putReq())
	}
}

func (g *randGen) key() []byte { return g.e.k(fmt.Sprintf("k%02d", g.r.IntN(randKeys))) }

func (g *randGen) value() []byte {
	vals := []string{"", "a", "b", "c", "ab", "b"}
	return []byte(vals[g.r.IntN(len(vals))])
}

func (g *randGen) rangeEnd(key []byte) []byte {
	switch g.r.IntN(8) {
	case 0:
		return prefixEnd(g.e.k(""))
	case 1:
		return fromKey
	case 2, 3:
		return g.key() // may be before key
	case 4:
		return prefixEnd(key)
	}
	return nil
}

func (g *randGen) revision() int64 {
	cur := g.e.rev()
	switch g.r.IntN(12) {
	case 0:
		return cur - int64(g.r.IntN(5))
	case 1:
		return cur - int64(g.r.IntN(40))
	case 2:
		return cur + 1
	case 3:
		return -1
	}
	return 0
}

func (g *randGen) rangeReq() *pb.RangeRequest {
	key := g.key()
	r := &pb.RangeRequest{Key: key, RangeEnd: g.rangeEnd(key), Revision: g.revision()}
	if g.r.IntN(3) == 0 {
		r.Limit = []int64{-1, 1, 2, 3, 5}[g.r.IntN(5)]
	}
	if g.r.IntN(3) == 0 {
		r.SortOrder = sortOrders[g.r.IntN(len(sortOrders))]
		r.SortTarget = sortTargets[g.r.IntN(len(sortTargets))]
		if g.r.IntN(40) == 0 {
			r.SortOrder = 7
		}
	}
	r.Serializable = g.r.IntN(4) == 0
	r.KeysOnly = g.r.IntN(6) == 0
	r.CountOnly = g.r.IntN(10) == 0
	if g.r.IntN(6) == 0 {
		cur := g.e.rev()
		pick := func() int64 { return max(cur-int64(g.r.IntN(30)), 0) }
		switch g.r.IntN(4) {
		case 0:
			r.MinModRevision = pick()
		case 1:
			r.MaxModRevision = pick()
		case 2:
			r.MinCreateRevision = pick()
		case 3:
			r.MaxCreateRevision, r.MinModRevision = pick(), pick()
		}
	}
	if g.r.IntN(60) == 0 {
		r.Key = nil
	}
	return r
}

// lease is the lease of a put or compare: mostly none, else one of the
// pool (granted or not).
func (g *randGen) lease() int64 {
	switch g.r.IntN(10) {
	case 0, 1, 2:
		return g.leases[g.r.IntN(len(g.leases))]
	}
	return 0
}

func (g *randGen) putReq() *pb.PutRequest {
	r := &pb.PutRequest{Key: g.key(), Value: g.value(), Lease: g.lease(), PrevKv: g.r.IntN(3) == 0}
	if g.r.IntN(10) == 0 {
		r.IgnoreValue = true
		if g.r.IntN(5) != 0 {
			r.Value = nil
		}
	}
	if g.r.IntN(10) == 0 {
		r.IgnoreLease = true
		if g.r.IntN(5) != 0 {
			r.Lease = 0
		}
	}
	return r
}

func (g *randGen) delReq() *pb.DeleteRangeRequest {
	key := g.key()
	r := &pb.DeleteRangeRequest{Key: key, PrevKv: g.r.IntN(2) == 0}
	switch g.r.IntN(6) {
	case 0:
		r.RangeEnd = g.key()
	case 1:
		r.RangeEnd = prefixEnd(key)
	}
	return r
}

func (g *randGen) compare() *pb.Compare {
	key := g.key()
	c := &pb.Compare{Key: key, Result: compareResults[g.r.IntN(len(compareResults))]}
	cur := g.e.rev()
	switch g.r.IntN(5) {
	case 0:
		c.Target, c.TargetUnion = pb.Compare_VALUE, &pb.Compare_Value{Value: g.value()}
	case 1:
		c.Target, c.TargetUnion = pb.Compare_VERSION, &pb.Compare_Version{Version: int64(g.r.IntN(4))}
	case 2:
		c.Target, c.TargetUnion = pb.Compare_CREATE, &pb.Compare_CreateRevision{CreateRevision: max(cur-int64(g.r.IntN(30)), 0)}
	case 3:
		c.Target, c.TargetUnion = pb.Compare_MOD, &pb.Compare_ModRevision{ModRevision: max(cur-int64(g.r.IntN(30)), 0)}
	case 4:
		c.Target, c.TargetUnion = pb.Compare_LEASE, &pb.Compare_Lease{Lease: g.lease()}
	}
	if g.r.IntN(6) == 0 {
		c.RangeEnd = g.rangeEnd(key)
	}
	return c
}

func (g *randGen) ops(depth int) []*pb.RequestOp {
	n := g.r.IntN(4)
	ops := make([]*pb.RequestOp, 0, n)
	for range n {
		switch k := g.r.IntN(10); {
		case k < 3:
			ops = append(ops, rangeOp(g.rangeReq()))
		case k < 6:
			ops = append(ops, putOp(g.putReq()))
		case k < 8:
			ops = append(ops, delOp(g.delReq()))
		case depth < 2:
			ops = append(ops, txnOp(g.txnReq(depth+1)))
		default:
			ops = append(ops, rangeOp(g.rangeReq()))
		}
	}
	if g.r.IntN(150) == 0 {
		ops = append(ops, &pb.RequestOp{})
	}
	return ops
}

func (g *randGen) txnReq(depth int) *pb.TxnRequest {
	r := &pb.TxnRequest{}
	for range g.r.IntN(4) {
		r.Compare = append(r.Compare, g.compare())
	}
	r.Success = g.ops(depth)
	r.Failure = g.ops(depth)
	return r
}

// compact compacts at a recent revision (sometimes a future one, refused).
// Watchers still catching up are let finish first: whether a compaction
// overtakes one is timing, not behaviour.
func (g *randGen) compact() {
	cur := g.e.rev()
	rev := cur - int64(g.r.IntN(20))
	if g.r.IntN(5) == 0 {
		rev = cur + 1
	}
	physical := g.r.IntN(2) == 0
	if g.unsettled {
		g.settle()
	}
	if _, err := g.e.Compact(&pb.CompactionRequest{Revision: rev, Physical: physical}); err == nil {
		g.compactRev = rev
	}
}

// cleanup stops the background keep-alives, closes the streams and revokes
// the sequence's leases on both servers (uncompared: the sequence may have
// stopped half-way), so that none expires during a later sequence.
func (g *randGen) cleanup() {
	g.keeper.stop()
	for _, s := range g.streams {
		s.w.close()
	}
	if g.ka != nil {
		g.ka.cancel()
	}
	for _, s := range []*server{g.e.p.etcd, g.e.p.sett} {
		for _, id := range g.leases {
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			s.lease.LeaseRevoke(ctx, &pb.LeaseRevokeRequest{ID: id})
			cancel()
		}
	}
}

package compat

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// TestLeaseDiff compares the lessor's answers (TimeToLive, LeaseLeases,
// keep-alives, expiry, restarts) between etcd and sett. Remaining TTLs,
// which depend on when each server was asked, may differ by one second.
func TestLeaseDiff(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and sett")
	}
	p := newPair(t)
	runScenarios(t, p, "lease", leaseScenarios)
	t.Run("HeaderIDs", func(t *testing.T) { p.checkIDs(t) })
}

var leaseScenarios = []scenario{
	{"01-timetolive-leases-keepalive", scLeaseQueries},
	{"02-expiry", scLeaseExpiry},
	{"03-keepalive-keeps-alive", scLeaseKeepAliveKeeps},
	{"04-server-chosen-ids", scLeaseServerChosenQueries},
	{"05-restart", scLeaseRestart},
}

type answer[R any] struct {
	resp R
	err  error
}

// fetch calls f on both servers concurrently and returns the answers by
// server kind.
func fetch[R any](p *pair, f func(ctx context.Context, s *server) (R, error)) map[string]answer[R] {
	out := map[string]answer[R]{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, s := range []*server{p.etcd, p.sett} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			defer cancel()
			r, err := f(ctx, s)
			mu.Lock()
			out[s.kind] = answer[R]{r, err}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// TimeToLive compares LeaseTimeToLive answers, taking sett's remaining TTL
// as etcd's when they differ by at most a second.
func (e *env) TimeToLive(r *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	e.t.Helper()
	got := fetch(e.p, func(ctx context.Context, s *server) (*pb.LeaseTimeToLiveResponse, error) {
		return s.lease.LeaseTimeToLive(ctx, r)
	})
	et, st := got["etcd"], got["sett"]
	if et.err == nil && st.err == nil && et.resp.TTL > 0 && st.resp.TTL > 0 && abs(et.resp.TTL-st.resp.TTL) <= 1 {
		st.resp.TTL = et.resp.TTL
	}
	// etcd lists a lease's keys in Go map order (random); sett in key
	// order. Compare them as sets.
	for _, a := range got {
		if a.err == nil {
			sort.Slice(a.resp.Keys, func(i, j int) bool { return bytes.Compare(a.resp.Keys[i], a.resp.Keys[j]) < 0 })
		}
	}
	return call(e, "LeaseTimeToLive", r, func(ctx context.Context, s *server) (*pb.LeaseTimeToLiveResponse, error) {
		return got[s.kind].resp, got[s.kind].err
	})
}

func (e *env) Leases() (*pb.LeaseLeasesResponse, error) {
	e.t.Helper()
	r := &pb.LeaseLeasesRequest{}
	return call(e, "LeaseLeases", r, func(ctx context.Context, s *server) (*pb.LeaseLeasesResponse, error) {
		return s.lease.LeaseLeases(ctx, r)
	})
}

// keepAlives are one LeaseKeepAlive stream per server.
type keepAlives struct {
	e       *env
	cancel  context.CancelFunc
	streams map[string]pb.Lease_LeaseKeepAliveClient
}

func (e *env) openKeepAlives() *keepAlives {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	k := &keepAlives{e: e, cancel: cancel, streams: map[string]pb.Lease_LeaseKeepAliveClient{}}
	for _, s := range []*server{e.p.etcd, e.p.sett} {
		st, err := s.lease.LeaseKeepAlive(ctx)
		if err != nil {
			e.t.Fatalf("%s: LeaseKeepAlive: %v", s.kind, err)
		}
		k.streams[s.kind] = st
	}
	e.t.Cleanup(cancel)
	return k
}

// send renews id on both streams and compares the answers.
func (k *keepAlives) send(id int64) (*pb.LeaseKeepAliveResponse, error) {
	k.e.t.Helper()
	r := &pb.LeaseKeepAliveRequest{ID: id}
	return call(k.e, "LeaseKeepAlive", r, func(ctx context.Context, s *server) (*pb.LeaseKeepAliveResponse, error) {
		st := k.streams[s.kind]
		if err := st.Send(r); err != nil {
			return nil, err
		}
		return st.Recv()
	})
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

func scLeaseQueries(e *env) {
	const l1, l2, l3, lneg = 0x7001, 0x7002, 0x7003, -0x7004
	for _, g := range []struct{ id, ttl int64 }{{l1, 100}, {l2, 50}, {l3, 200}, {lneg, 150}} {
		_, err := e.Grant(&pb.LeaseGrantRequest{ID: g.id, TTL: g.ttl})
		e.wantOK(err)
	}
	e.Put(&pb.PutRequest{Key: e.k("b"), Value: []byte("v"), Lease: l1})
	e.Put(&pb.PutRequest{Key: e.k("a"), Value: []byte("v"), Lease: l1})
	e.Put(&pb.PutRequest{Key: e.k("c"), Value: []byte("v"), Lease: l3})

	e.TimeToLive(&pb.LeaseTimeToLiveRequest{ID: l1})
	e.TimeToLive(&pb.LeaseTimeToLiveRequest{ID: l1, Keys: true})
	e.TimeToLive(&pb.LeaseTimeToLiveRequest{ID: l2, Keys: true}) // no keys
	e.TimeToLive(&pb.LeaseTimeToLiveRequest{ID: lneg})
	e.TimeToLive(&pb.LeaseTimeToLiveRequest{ID: 0x7777}) // unknown: TTL -1
	e.TimeToLive(&pb.LeaseTimeToLiveRequest{ID: 0x7777, Keys: true})
	e.TimeToLive(&pb.LeaseTimeToLiveRequest{ID: 0})
	e.Leases() // soonest expiry first: l2, l1, lneg, l3

	ka := e.openKeepAlives()
	for _, id := range []int64{l1, 0x7777, 0, lneg, l2, l1} {
		ka.send(id)
	}
	e.Leases() // l2 was renewed but still expires first

	// A key moved to another lease, a key detached, a key deleted.
	e.Put(&pb.PutRequest{Key: e.k("a"), Value: []byte("w"), Lease: l3})
	e.Put(&pb.PutRequest{Key: e.k("d"), Value: []byte("v"), Lease: l1})
	e.Put(&pb.PutRequest{Key: e.k("d"), Value: []byte("w")})
	e.Put(&pb.PutRequest{Key: e.k("e"), Value: []byte("v"), Lease: l1})
	e.Delete(&pb.DeleteRangeRequest{Key: e.k("e")})
	e.TimeToLive(&pb.LeaseTimeToLiveRequest{ID: l1, Keys: true})
	e.TimeToLive(&pb.LeaseTimeToLiveRequest{ID: l3, Keys: true})

	_, err := e.Revoke(&pb.LeaseRevokeRequest{ID: l1})
	e.wantOK(err)
	e.TimeToLive(&pb.LeaseTimeToLiveRequest{ID: l1, Keys: true})
	ka.send(l1) // TTL 0
	e.Leases()
	_, err = e.Revoke(&pb.LeaseRevokeRequest{ID: l1})
	e.wantErr(err, rpctypes.ErrGRPCLeaseNotFound)
	for _, id := range []int64{l2, l3, lneg} {
		e.Revoke(&pb.LeaseRevokeRequest{ID: id})
	}
	e.Leases() // none
	ka.send(l3)
	e.get(e.k(""), prefixEnd(e.k("")))
}

// scLeaseExpiry lets a lease with keys and one without expire on both
// servers, then compares what is left.
func scLeaseExpiry(e *env) {
	const lk, lnone, llong = 0x7101, 0x7102, 0x7103
	e.Grant(&pb.LeaseGrantRequest{ID: lk, TTL: 2})
	e.Grant(&pb.LeaseGrantRequest{ID: lnone, TTL: 1}) // raised to 2
	e.Grant(&pb.LeaseGrantRequest{ID: llong, TTL: 100})
	var ops []*pb.RequestOp
	for i := range 50 {
		ops = append(ops, putOp(&pb.PutRequest{Key: e.k(fmt.Sprintf("k%02d", i)), Value: []byte("v"), Lease: lk}))
	}
	_, err := e.Txn(&pb.TxnRequest{Success: ops})
	e.wantOK(err)
	e.Put(&pb.PutRequest{Key: e.k("long"), Value: []byte("v"), Lease: llong})
	before := e.rev()
	e.TimeToLive(&pb.LeaseTimeToLiveRequest{ID: lk})
	// etcd revokes within 500 ms after the TTL; the revoke itself is quick.
	time.Sleep(3500 * time.Millisecond)
	e.get(e.k(""), prefixEnd(e.k(""))) // one revision later: the 50 keys deleted
	e.Range(&pb.RangeRequest{Key: e.k(""), RangeEnd: prefixEnd(e.k("")), Revision: before})
	e.Range(&pb.RangeRequest{Key: e.k(""), RangeEnd: prefixEnd(e.k("")), Revision: before + 1, CountOnly: true})
	e.TimeToLive(&pb.LeaseTimeToLiveRequest{ID: lk, Keys: true})
	e.TimeToLive(&pb.LeaseTimeToLiveRequest{ID: lnone})
	e.TimeToLive(&pb.LeaseTimeToLiveRequest{ID: llong, Keys: true})
	e.openKeepAlives().send(lk)
	e.Leases()
	_, err = e.Revoke(&pb.LeaseRevokeRequest{ID: lk})
	e.wantErr(err, rpctypes.ErrGRPCLeaseNotFound)
	_, err = e.Put(&pb.PutRequest{Key: e.k("x"), Value: []byte("v"), Lease: lk})
	e.wantErr(err, rpctypes.ErrGRPCLeaseNotFound)
	// The ID can be granted again.
	e.Grant(&pb.LeaseGrantRequest{ID: lk, TTL: 30})
	e.TimeToLive(&pb.LeaseTimeToLiveRequest{ID: lk, Keys: true})
	e.Revoke(&pb.LeaseRevokeRequest{ID: lk})
	e.Revoke(&pb.LeaseRevokeRequest{ID: llong})
}

// scLeaseKeepAliveKeeps renews a 2 s lease for 5 s on both servers, then
// lets it expire.
func scLeaseKeepAliveKeeps(e *env) {
	const l = 0x7201
	e.Grant(&pb.LeaseGrantRequest{ID: l, TTL: 2})
	e.Put(&pb.PutRequest{Key: e.k("k"), Value: []byte("v"), Lease: l})
	ka := e.openKeepAlives()
	for range 10 {
		time.Sleep(500 * time.Millisecond)
		ka.send(l)
	}
	e.get(e.k(""), prefixEnd(e.k("")))
	e.TimeToLive(&pb.LeaseTimeToLiveRequest{ID: l, Keys: true})
	time.Sleep(3500 * time.Millisecond)
	e.get(e.k(""), prefixEnd(e.k("")))
	ka.send(l)
	e.TimeToLive(&pb.LeaseTimeToLiveRequest{ID: l})
}

// scLeaseServerChosenQueries asks about leases whose IDs the servers chose
// (they differ below bit 48): IDs in answers are compared >> 48.
func scLeaseServerChosenQueries(e *env) {
	var mu sync.Mutex
	ids := map[string]int64{}
	e.ctx = "server-chosen lease ID, compared >> 48"
	defer func() { e.ctx = "" }()
	call(e, "LeaseGrant", &pb.LeaseGrantRequest{TTL: 60}, func(ctx context.Context, s *server) (*pb.LeaseGrantResponse, error) {
		resp, err := s.lease.LeaseGrant(ctx, &pb.LeaseGrantRequest{TTL: 60})
		if err == nil {
			mu.Lock()
			ids[s.kind] = resp.ID
			mu.Unlock()
			resp.ID >>= 48
		}
		return resp, err
	})
	call(e, "Put", &pb.PutRequest{}, func(ctx context.Context, s *server) (*pb.PutResponse, error) {
		return s.kv.Put(ctx, &pb.PutRequest{Key: e.k("k"), Value: []byte("v"), Lease: ids[s.kind]})
	})
	got := fetch(e.p, func(ctx context.Context, s *server) (*pb.LeaseTimeToLiveResponse, error) {
		r, err := s.lease.LeaseTimeToLive(ctx, &pb.LeaseTimeToLiveRequest{ID: ids[s.kind], Keys: true})
		if err == nil {
			r.ID >>= 48
		}
		return r, err
	})
	if et, st := got["etcd"], got["sett"]; et.err == nil && st.err == nil && abs(et.resp.TTL-st.resp.TTL) <= 1 {
		st.resp.TTL = et.resp.TTL
	}
	call(e, "LeaseTimeToLive", &pb.LeaseTimeToLiveRequest{}, func(ctx context.Context, s *server) (*pb.LeaseTimeToLiveResponse, error) {
		return got[s.kind].resp, got[s.kind].err
	})
	call(e, "LeaseLeases", &pb.LeaseLeasesRequest{}, func(ctx context.Context, s *server) (*pb.LeaseLeasesResponse, error) {
		r, err := s.lease.LeaseLeases(ctx, &pb.LeaseLeasesRequest{})
		if err == nil {
			for _, l := range r.Leases {
				l.ID >>= 48
			}
		}
		return r, err
	})
	ka := e.openKeepAlives()
	call(e, "LeaseKeepAlive", &pb.LeaseKeepAliveRequest{}, func(ctx context.Context, s *server) (*pb.LeaseKeepAliveResponse, error) {
		st := ka.streams[s.kind]
		if err := st.Send(&pb.LeaseKeepAliveRequest{ID: ids[s.kind]}); err != nil {
			return nil, err
		}
		r, err := st.Recv()
		if err == nil {
			r.ID >>= 48
		}
		return r, err
	})
	call(e, "LeaseRevoke", &pb.LeaseRevokeRequest{}, func(ctx context.Context, s *server) (*pb.LeaseRevokeResponse, error) {
		return s.lease.LeaseRevoke(ctx, &pb.LeaseRevokeRequest{ID: ids[s.kind]})
	})
	e.get(e.k(""), prefixEnd(e.k("")))
}

// scLeaseRestart: after a clean restart and after a crash, both servers
// give each lease its full TTL plus a second (no checkpoint: etcd has
// checkpoints off by default, and sett's first would come after 5
// minutes), keep its keys, and expire short leases the same way.
func scLeaseRestart(e *env) {
	const llong, lshort = 0x7301, 0x7302
	e.Grant(&pb.LeaseGrantRequest{ID: llong, TTL: 3600})
	e.Grant(&pb.LeaseGrantRequest{ID: lshort, TTL: 5})
	e.Put(&pb.PutRequest{Key: e.k("long"), Value: []byte("v"), Lease: llong})
	e.Put(&pb.PutRequest{Key: e.k("short"), Value: []byte("v"), Lease: lshort})
	time.Sleep(2 * time.Second)
	e.restartBoth(false)
	e.TimeToLive(&pb.LeaseTimeToLiveRequest{ID: llong, Keys: true})
	e.Leases()
	e.restartBoth(true)
	e.TimeToLive(&pb.LeaseTimeToLiveRequest{ID: llong, Keys: true})
	e.get(e.k(""), prefixEnd(e.k("")))
	// The short lease restarted with 5 + 1 s: gone within 8 s on both.
	time.Sleep(8 * time.Second)
	e.get(e.k(""), prefixEnd(e.k("")))
	e.TimeToLive(&pb.LeaseTimeToLiveRequest{ID: lshort})
	e.Revoke(&pb.LeaseRevokeRequest{ID: llong})
	e.Leases()
}

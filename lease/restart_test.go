package lease_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sett-dev/sett/internal/testproc"
	"github.com/sett-dev/sett/lease"
)

func bg(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func timeToLive(t *testing.T, cli *clientv3.Client, id clientv3.LeaseID) *clientv3.LeaseTimeToLiveResponse {
	t.Helper()
	r, err := cli.TimeToLive(bg(t), id, clientv3.WithAttachedKeys())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// After kill -9, leases and their keys are back, every lease with its full
// TTL plus a second from the restart (no checkpoint: TTLs below the
// checkpoint interval), not reset to zero and not lost; short leases then
// expire on time, their keys in one revision.
func TestLeasesSurviveKillNine(t *testing.T) {
	if testing.Short() {
		t.Skip("starts sett")
	}
	p := testproc.StartSett(t, testproc.Options{})
	cli := testproc.Client(t, p)
	long, err := cli.Grant(bg(t), 60)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(bg(t), "/r/long", "v", clientv3.WithLease(long.ID)); err != nil {
		t.Fatal(err)
	}
	short, err := cli.Grant(bg(t), 3)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i += 50 {
		var ops []clientv3.Op
		for j := i; j < i+50; j++ {
			ops = append(ops, clientv3.OpPut(fmt.Sprintf("/r/short/%03d", j), "v", clientv3.WithLease(short.ID)))
		}
		if _, err := cli.Txn(bg(t)).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Second)
	p.Kill()
	cli.Close()

	p.Restart(t)
	restarted := time.Now()
	cli = testproc.Client(t, p)
	r := timeToLive(t, cli, long.ID)
	// 60 s + 1 s from the restart, read within a second or two.
	if r.TTL < 58 || r.TTL > 60 || r.GrantedTTL != 60 || len(r.Keys) != 1 || string(r.Keys[0]) != "/r/long" {
		t.Fatalf("long lease after the restart: %+v", r)
	}
	r = timeToLive(t, cli, short.ID)
	if r.TTL < 1 || r.TTL > 3 || r.GrantedTTL != 3 || len(r.Keys) != 100 {
		t.Fatalf("short lease after the restart: TTL %d granted %d, %d keys", r.TTL, r.GrantedTTL, len(r.Keys))
	}
	g, err := cli.Get(bg(t), "/r/short/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || g.Count != 100 {
		t.Fatalf("short keys after the restart: %v %v", g, err)
	}
	before := g.Header.Revision
	for {
		g, err = cli.Get(bg(t), "/r/short/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		if g.Count == 0 {
			break
		}
		if time.Since(restarted) > 10*time.Second {
			t.Fatal("short lease not expired after the restart")
		}
		time.Sleep(20 * time.Millisecond)
	}
	gone := time.Since(restarted)
	t.Logf("short lease (3 s, 1 s used before the crash) expired %v after the restart", gone)
	// The lower bound shows the TTL was restored rather than spent at the
	// restart; the upper one only that expiry happened, with room for a
	// loaded two-core CI machine (other test packages run alongside).
	if gone < 3500*time.Millisecond || gone > 7500*time.Millisecond {
		t.Fatalf("short lease expired %v after the restart, want about 4 s (3 s + 1 s)", gone)
	}
	if g.Header.Revision != before+1 {
		t.Fatalf("expiry at revision %d, want one revision after %d", g.Header.Revision, before)
	}
	if old, err := cli.Get(bg(t), "/r/short/", clientv3.WithPrefix(), clientv3.WithCountOnly(), clientv3.WithRev(before)); err != nil || old.Count != 100 {
		t.Fatalf("at revision %d: %v %v", before, old, err)
	}
	if r := timeToLive(t, cli, long.ID); r.TTL < 50 {
		t.Fatalf("long lease: %+v", r)
	}
}

// With checkpoints (every second here), a lease restarts with its last
// checkpointed remaining TTL plus a second: neither its full TTL nor less
// for the time the member was down.
func TestLeaseRestartFromCheckpoint(t *testing.T) {
	if testing.Short() {
		t.Skip("starts sett")
	}
	p := testproc.StartSett(t, testproc.Options{Env: []string{lease.CheckpointIntervalEnv + "=1s"}})
	cli := testproc.Client(t, p)
	l, err := cli.Grant(bg(t), 30)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(bg(t), "/cp/k", "v", clientv3.WithLease(l.ID)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(4500 * time.Millisecond)
	before := timeToLive(t, cli, l.ID).TTL // 25
	cli.Close()
	p.Stop()
	time.Sleep(3 * time.Second)
	p.Restart(t)
	cli = testproc.Client(t, p)
	r := timeToLive(t, cli, l.ID)
	t.Logf("remaining TTL %d before the stop, %d after 3 s down and a restart", before, r.TTL)
	// Last checkpoint 26 (at 4 s), + 1 s: 27, read a little later. Full
	// TTL would be 30; counting the downtime 22 or less.
	if r.TTL < before-1 || r.TTL > before+2 || r.GrantedTTL != 30 || len(r.Keys) != 1 {
		t.Fatalf("after the restart: %+v (before: %d)", r, before)
	}
}

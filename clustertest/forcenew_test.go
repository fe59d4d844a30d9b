package clustertest

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// A 3-member cluster loses two members for good; the third, restarted with
// --force-new-cluster, is a one-member cluster with every write, takes
// writes, and keeps being one on a restart without the flag. etcd and sett
// end with the same keys, revision and member count. (sett also keeps
// writes its store applied whose commit its log had not recorded yet.)
func TestForceNewCluster(t *testing.T) {
	type outcome struct {
		keys    int
		rev     int64
		members int
		name    string
	}
	var got []outcome
	for _, kind := range kindsUnderTest {
		t.Run(kind.Name, func(t *testing.T) {
			ctx := context.Background()
			c := Start(ctx, t, kind, Config{Size: 3})
			cli := c.NewClient(c.Members()...)
			for i := range 100 {
				if _, err := cli.Put(ctx, fmt.Sprintf("k%03d", i), "v"); err != nil {
					t.Fatal(err)
				}
			}
			survivor := c.Members()[0]
			// Every member has applied every write before two are lost.
			c.WaitHealthy(ctx)
			for _, m := range c.Members() {
				mcli := c.NewClient(m)
				for {
					resp, err := mcli.Get(ctx, "k099", clientv3.WithSerializable())
					if err == nil && len(resp.Kvs) == 1 {
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
			// etcd may lose the newest writes here: its applier can run
			// ahead of the hard state recording their commit, and its
			// backend commits every 100ms; force-new-cluster then drops
			// them as uncommitted. Give it time to persist both.
			time.Sleep(time.Second)
			for _, m := range c.Members()[1:] {
				c.Kill(m)
			}
			c.Kill(survivor)
			args := survivor.proc.Args
			survivor.proc.Args = append(append([]string(nil), args...), "--force-new-cluster")
			c.Restart(survivor)
			check := func(what string) outcome {
				t.Helper()
				scli := c.NewClient(survivor)
				wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				defer cancel()
				var err error
				for wctx.Err() == nil {
					if _, err = scli.Put(wctx, "after-"+what, "v"); err == nil {
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
				if err != nil {
					t.Fatalf("%s: put: %v", what, err)
				}
				resp, err := scli.Get(wctx, "k", clientv3.WithPrefix(), clientv3.WithCountOnly())
				if err != nil {
					t.Fatal(err)
				}
				ml, err := scli.MemberList(wctx)
				if err != nil {
					t.Fatal(err)
				}
				o := outcome{keys: int(resp.Count), rev: resp.Header.Revision, members: len(ml.Members)}
				if len(ml.Members) > 0 {
					o.name = ml.Members[0].Name
				}
				if o.keys != 100 || o.members != 1 || ml.Members[0].ID != survivor.ID {
					t.Errorf("%s: %d keys, members %v; want 100 keys and only %s", what, o.keys, ml.Members, survivor)
				}
				return o
			}
			forced := check("forced")
			survivor.proc.Args = args
			c.Restart(survivor)
			again := check("restarted")
			t.Logf("forced: %+v; restarted without the flag: %+v", forced, again)
			got = append(got, again)
		})
	}
	if len(got) == 2 && got[0] != got[1] {
		t.Errorf("etcd ended with %+v, sett with %+v", got[0], got[1])
	}
}

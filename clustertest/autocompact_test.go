package clustertest

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

const autoCompactStarting = `"msg":"starting auto periodic compaction"`

// autoCompactions counts the auto-compactions each member started.
func autoCompactions(c *Cluster) map[string]int {
	out := map[string]int{}
	for _, m := range c.Members() {
		out[m.Name] = strings.Count(m.Logs(), autoCompactStarting)
	}
	return out
}

// Only the leader auto-compacts; when leadership moves, the old leader
// stops and the new one takes over. The compaction is replicated: every
// member refuses a read below it.
func TestAutoCompactionLeaderOnly(t *testing.T) {
	for _, kind := range kindsUnderTest {
		t.Run(kind.Name, func(t *testing.T) {
			ctx := context.Background()
			c := Start(ctx, t, kind, Config{Size: 3, ExtraArgs: []string{
				"--auto-compaction-mode=periodic", "--auto-compaction-retention=1s", "--log-level=info"}})
			cli := c.NewClient(c.Members()...)
			write := func(d time.Duration) {
				t.Helper()
				for end := time.Now().Add(d); time.Now().Before(end); {
					wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					_, err := cli.Put(wctx, "k", strconv.FormatInt(time.Now().UnixNano(), 10))
					cancel()
					if err != nil {
						t.Fatalf("put: %v", err)
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
			first := c.Leader(ctx)
			write(3 * time.Second)
			before := autoCompactions(c)
			for _, m := range c.Members() {
				if m == first && before[m.Name] == 0 {
					t.Fatalf("leader %s did not auto-compact: %v", m, before)
				}
				if m != first && before[m.Name] != 0 {
					t.Fatalf("follower %s auto-compacted: %v", m, before)
				}
			}
			var next *Member
			for _, m := range c.Members() {
				if m != first {
					next = m
					break
				}
			}
			lcli := c.NewClient(first)
			mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := lcli.MoveLeader(mctx, next.ID)
			cancel()
			if err != nil {
				t.Fatalf("move leader to %s: %v", next, err)
			}
			if l := c.Leader(ctx); l != next {
				t.Fatalf("leader %s after moving it to %s", l, next)
			}
			moved := autoCompactions(c)
			write(3 * time.Second)
			after := autoCompactions(c)
			t.Logf("auto-compactions started: before the move %v, at it %v, after %v", before, moved, after)
			for _, m := range c.Members() {
				switch {
				case m == next && after[m.Name] == moved[m.Name]:
					t.Errorf("new leader %s did not auto-compact", m)
				case m != next && after[m.Name] != moved[m.Name]:
					t.Errorf("%s auto-compacted while %s led", m, next)
				}
			}
			// Every member applied the compactions.
			head, err := cli.Get(ctx, "k")
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range c.Members() {
				mcli := c.NewClient(m)
				_, err := mcli.Get(ctx, "k", clientv3.WithRev(2), clientv3.WithSerializable())
				if err == nil || !strings.Contains(err.Error(), "required revision has been compacted") {
					t.Errorf("%s: get at revision 2 (head %d): %v, want compacted", m, head.Header.Revision, err)
				}
			}
		})
	}
}

package clustertest

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// raftLines are the raft lines (logger "raft") of a member's JSON log.
func raftLines(logs string) []string {
	var out []string
	for _, l := range strings.Split(logs, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) != nil || m["logger"] != "raft" {
			continue
		}
		if msg, ok := m["msg"].(string); ok {
			out = append(out, msg)
		}
	}
	return out
}

// When the leader dies, the survivors log raft's "lost leader" and then
// "elected leader" lines, with logger "raft", on etcd and sett alike:
// operators alert on them.
func TestLeaderChangeLogs(t *testing.T) {
	want := []string{"lost leader", "elected leader", "became leader at term"}
	found := map[string]map[string]bool{}
	for _, kind := range kindsUnderTest {
		t.Run(kind.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			c := Start(ctx, t, kind, Config{Size: 3})
			old := c.Leader(ctx)
			c.Kill(old)
			var survivors []*Member
			for _, m := range c.Members() {
				if m != old {
					survivors = append(survivors, m)
				}
			}
			c.LeaderAmong(ctx, survivors, old)
			seen := map[string]bool{}
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) {
				for _, m := range survivors {
					for _, l := range raftLines(m.Logs()) {
						for _, w := range want {
							// Only lines after the kill count for "lost leader".
							if strings.Contains(l, w) {
								seen[w] = true
							}
						}
					}
				}
				if len(seen) == len(want) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			found[kind.Name] = seen
			for _, w := range want {
				if !seen[w] {
					t.Errorf("%s: no raft line %q on the survivors", kind.Name, w)
				}
			}
		})
	}
	t.Logf("raft lines seen: %v", found)
}

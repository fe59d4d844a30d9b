package clustertest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// CheckHashKV checks that every running member has the same KV hash at
// the revision rev (waiting for members still applying up to it).
func (c *Cluster) CheckHashKV(ctx context.Context, rev int64) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	hashes := map[string]uint32{}
	for _, m := range c.Members() {
		if !m.Running() {
			continue
		}
		cli, err := c.memberClient(m)
		if err != nil {
			c.t.Fatalf("clustertest: %v", err)
		}
		for {
			hctx, hcancel := context.WithTimeout(ctx, 5*time.Second)
			resp, err := cli.HashKV(hctx, m.ClientURL(), rev)
			hcancel()
			if err == nil {
				hashes[m.Name] = resp.Hash
				break
			}
			select {
			case <-ctx.Done():
				c.t.Fatalf("clustertest: HashKV of %s at revision %d: %v", m.Name, rev, err)
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	distinct := map[uint32]bool{}
	for _, h := range hashes {
		distinct[h] = true
	}
	if len(distinct) != 1 {
		c.t.Errorf("clustertest: members differ in their KV hash at revision %d: %v", rev, hashes)
	}
}

// CheckRaftIndex checks that the running members' statuses converge on one
// raft index, at least minIndex (every write is an entry of the log).
func (c *Cluster) CheckRaftIndex(ctx context.Context, minIndex uint64) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		indexes := map[string]uint64{}
		distinct := map[uint64]bool{}
		var errs []error
		for _, m := range c.Members() {
			if !m.Running() {
				continue
			}
			st, err := c.Status(ctx, m)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			indexes[m.Name] = st.RaftIndex
			distinct[st.RaftIndex] = true
		}
		if len(errs) == 0 && len(distinct) == 1 && indexes[c.Members()[0].Name] >= minIndex {
			return
		}
		if time.Now().After(deadline) {
			c.t.Errorf("clustertest: raft indexes %v (errors %v), want one index of at least %d", indexes, errs, minIndex)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Metric sums the samples of the Prometheus metric name on m's /metrics.
// Safe for concurrent use.
func (c *Cluster) Metric(ctx context.Context, m *Member, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.ClientURL()+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s/metrics: %s", m.ClientURL(), resp.Status)
	}
	var sum float64
	found := false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("metric line %q: %v", line, err)
		}
		sum += v
		found = true
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	if !found {
		return 0, errors.New("no metric " + name + " on " + m.Name)
	}
	return sum, nil
}

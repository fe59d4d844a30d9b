package main

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sett-dev/sett/internal/testproc"
)

type ack struct {
	value string
	rev   int64
}

// Every write acknowledged before a kill -9 is there after the restart,
// at the revision it was acknowledged with, and revisions continue after it.
func TestKillNineLosesNoAcknowledgedWrite(t *testing.T) {
	p := testproc.StartSett(t, testproc.Options{})
	cli := testproc.Client(t, p)

	var mu sync.Mutex
	acked := map[string]ack{}
	var maxRev int64
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				key, val := fmt.Sprintf("crash/%02d/%06d", w, i), fmt.Sprintf("v%d-%d", w, i)
				if i%5 == 4 { // overwrite an earlier key too
					key = fmt.Sprintf("crash/%02d/%06d", w, i/2)
				}
				resp, err := cli.Put(ctx, key, val)
				if err != nil {
					return // the server died mid-request: unacknowledged
				}
				mu.Lock()
				acked[key] = ack{val, resp.Header.Revision}
				maxRev = max(maxRev, resp.Header.Revision)
				mu.Unlock()
			}
		}(w)
	}
	time.Sleep(1500 * time.Millisecond)
	p.Kill()
	cancel()
	wg.Wait()
	cli.Close()
	if len(acked) < 100 {
		t.Fatalf("only %d writes acknowledged before the kill", len(acked))
	}

	p.Restart(t)
	cli = testproc.Client(t, p)
	resp, err := cli.Get(context.Background(), "crash/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Revision < maxRev {
		t.Fatalf("revision after restart %d < last acknowledged %d", resp.Header.Revision, maxRev)
	}
	got := map[string]string{}
	modRev := map[string]int64{}
	for _, kv := range resp.Kvs {
		got[string(kv.Key)] = string(kv.Value)
		modRev[string(kv.Key)] = kv.ModRevision
	}
	for k, a := range acked {
		// A later unacknowledged write may have overwritten the value;
		// it must then be at a newer revision.
		if got[k] != a.value && modRev[k] <= a.rev {
			t.Fatalf("key %s: got %q at %d, acknowledged %q at %d", k, got[k], modRev[k], a.value, a.rev)
		}
		if got[k] == a.value && modRev[k] != a.rev {
			t.Fatalf("key %s: mod revision %d, acknowledged at %d", k, modRev[k], a.rev)
		}
	}
	next, err := cli.Put(context.Background(), "crash/after", "x")
	if err != nil {
		t.Fatal(err)
	}
	if next.Header.Revision != resp.Header.Revision+1 {
		t.Fatalf("first write after restart at %d, want %d", next.Header.Revision, resp.Header.Revision+1)
	}
	t.Logf("%d keys acknowledged before kill -9, last revision %d; all present", len(acked), maxRev)
}

// A second sett on a data dir in use fails at once with a clear message;
// SIGTERM stops the first cleanly.
func TestDataDirInUseAndCleanShutdown(t *testing.T) {
	p := testproc.StartSett(t, testproc.Options{})
	port := testproc.FreePort(t)
	cmd := exec.Command(p.Binary, "--data-dir", p.DataDir,
		"--listen-client-urls", fmt.Sprintf("http://127.0.0.1:%d", port),
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", testproc.FreePort(t)))
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("second sett on the same data dir started:\n%s", out)
	}
	if !strings.Contains(string(out), "data directory is in use by another process") {
		t.Fatalf("unclear message for a data dir in use:\n%s", out)
	}
	p.Stop()
	if err := p.ExitError(); err != nil {
		t.Fatalf("SIGTERM exit: %v\n%s", err, p.Logs())
	}
	if !strings.Contains(p.Logs(), `"msg":"stopped"`) {
		t.Fatalf("no clean stop in log:\n%s", p.Logs())
	}
}

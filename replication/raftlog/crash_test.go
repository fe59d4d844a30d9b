package raftlog

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

// crashChildEnv names the log directory a re-executed test binary appends
// to until it is killed (see TestMain and crashChild).
const crashChildEnv = "RAFTLOG_CRASH_CHILD_DIR"

const crashEntryBytes = 300

func crashOptions() Options { return Options{SegmentBytes: 32 << 10} }

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		if err := crashChild(dir); err != nil {
			fmt.Fprintln(os.Stderr, "crash child:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// crashChild appends one entry per Save, printing each index once Save has
// returned (so it is acknowledged as durable), snapshotting and releasing
// now and then, until killed.
func crashChild(dir string) error {
	l, st, err := Open(dir, crashOptions())
	if err != nil {
		return err
	}
	next := st.Snapshot.Index + 1
	if n := len(st.Entries); n > 0 {
		next = st.Entries[n-1].Index + 1
	}
	term := st.HardState.Term + 1
	for i := next; ; i++ {
		hs := raftpb.HardState{Term: term, Vote: 1, Commit: i - 1}
		if err := l.Save(hs, []raftpb.Entry{{Index: i, Term: term, Data: entryData(i, 0, crashEntryBytes)}}); err != nil {
			return err
		}
		if _, err := fmt.Fprintf(os.Stdout, "%d\n", i); err != nil {
			return err
		}
		if i%64 == 0 {
			if err := l.SaveSnapshot(snapMeta(i-32, term)); err != nil {
				return err
			}
			if err := l.ReleaseTo(i - 32); err != nil {
				return err
			}
		}
	}
}

// TestCrash kills a process appending to the log (SIGKILL, at an arbitrary
// point) several times; after each kill every acknowledged entry must be
// there, with the data written.
func TestCrash(t *testing.T) {
	dir := t.TempDir()
	var acked uint64
	for round := range 4 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bufLog
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan uint64)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				// Each line is one write call, atomic on a pipe.
				if n, err := strconv.ParseUint(sc.Text(), 10, 64); err == nil {
					lines <- n
				}
			}
		}()
		// Let it run for a while (varied, so the kill lands at different
		// points), then kill it mid-flight.
		deadline := time.After(time.Duration(300+round*250) * time.Millisecond)
		roundAcks := 0
	wait:
		for {
			select {
			case n, ok := <-lines:
				if !ok {
					cmd.Wait()
					t.Fatalf("round %d: child exited early: %s", round, stderr.String())
				}
				acked = max(acked, n)
				roundAcks++
			case <-deadline:
				break wait
			}
		}
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		for n := range lines {
			acked = max(acked, n)
			roundAcks++
		}
		cmd.Wait()
		if roundAcks == 0 {
			t.Fatalf("round %d: no entry acknowledged: %s", round, stderr.String())
		}

		l, st, err := Open(dir, crashOptions())
		if err != nil {
			t.Fatalf("round %d: Open after kill: %v", round, err)
		}
		last := st.Snapshot.Index
		for i, e := range st.Entries {
			if e.Index != st.Snapshot.Index+uint64(i)+1 {
				t.Fatalf("round %d: entries not contiguous after snapshot %d: %s", round, st.Snapshot.Index, span(st.Entries))
			}
			if string(e.Data) != string(entryData(e.Index, 0, crashEntryBytes)) {
				t.Fatalf("round %d: entry %d data differs", round, e.Index)
			}
			last = e.Index
		}
		if last < acked {
			t.Fatalf("round %d: acknowledged up to %d, log has up to %d", round, acked, last)
		}
		t.Logf("round %d: %d acknowledged this round, log up to %d, snapshot %d, %d segments",
			round, roundAcks, last, st.Snapshot.Index, len(segmentPaths(t, dir)))
		mustClose(t, l)
	}
}

// bufLog collects a child's stderr for failure messages.
type bufLog struct{ b []byte }

func (w *bufLog) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }
func (w *bufLog) String() string              { return string(w.b) }

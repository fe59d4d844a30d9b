package raftlog

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

func TestExistsAndCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "member")
	if Exists(dir) {
		t.Fatal("Exists before Open")
	}
	// Leftover of a creation interrupted before its rename.
	if err := os.MkdirAll(filepath.Join(dir, logDirName+tmpExt), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, logDirName+tmpExt, "junk.wal"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if Exists(dir) {
		t.Fatal("Exists with only an interrupted creation")
	}
	l, st := mustOpen(t, dir, Options{SegmentBytes: 64 << 10})
	if d := diffState(st, State{}); d != "" {
		t.Fatalf("fresh log: %s", d)
	}
	if !Exists(dir) {
		t.Fatal("Exists after Open = false")
	}
	if _, err := os.Stat(filepath.Join(dir, logDirName+tmpExt)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("interrupted creation left behind: %v", err)
	}
	paths := segmentPaths(t, dir)
	if len(paths) != 1 {
		t.Fatalf("segments %v, want 1", paths)
	}
	fi, err := os.Stat(paths[0])
	if err != nil || fi.Size() != 64<<10 {
		t.Fatalf("segment not preallocated: %v %v", fi, err)
	}
	mustClose(t, l)
}

// op is one step applied to a log in the table-driven tests.
type op func(l *Log) error

func save(hs raftpb.HardState, es []raftpb.Entry) op {
	return func(l *Log) error { return l.Save(hs, es) }
}

func snapshot(index, term uint64) op {
	return func(l *Log) error { return l.SaveSnapshot(snapMeta(index, term)) }
}

func snapMeta(index, term uint64) raftpb.SnapshotMetadata {
	return raftpb.SnapshotMetadata{Index: index, Term: term, ConfState: raftpb.ConfState{Voters: []uint64{1, 2, 3}}}
}

func concat(parts ...[]raftpb.Entry) []raftpb.Entry { return slices.Concat(parts...) }

func TestRoundTrip(t *testing.T) {
	hs1 := raftpb.HardState{Term: 1, Vote: 1, Commit: 0}
	hs2 := raftpb.HardState{Term: 2, Vote: 3, Commit: 5}
	tests := []struct {
		name string
		ops  []op
		want State
	}{
		{name: "empty", want: State{}},
		{
			name: "hard state only",
			ops:  []op{save(hs1, nil), save(hs2, nil)},
			want: State{HardState: hs2},
		},
		{
			name: "entries and hard state",
			ops:  []op{save(hs1, ents(1, 5, 1, 300)), save(hs2, ents(6, 9, 2, 10)), save(raftpb.HardState{}, ents(10, 10, 2, 0))},
			want: State{HardState: hs2, Entries: concat(ents(1, 5, 1, 300), ents(6, 9, 2, 10), ents(10, 10, 2, 0))},
		},
		{
			name: "overwrite suffix with new term",
			ops:  []op{save(hs1, ents(1, 10, 1, 100)), save(hs2, ents(6, 8, 2, 100))},
			want: State{HardState: hs2, Entries: concat(ents(1, 5, 1, 100), ents(6, 8, 2, 100))},
		},
		{
			name: "overwrite then append",
			ops:  []op{save(hs1, ents(1, 10, 1, 100)), save(hs2, ents(4, 6, 2, 100)), save(hs2, ents(7, 12, 2, 100))},
			want: State{HardState: hs2, Entries: concat(ents(1, 3, 1, 100), ents(4, 12, 2, 100))},
		},
		{
			name: "snapshot at applied index keeps later entries",
			ops:  []op{save(hs2, ents(1, 10, 1, 100)), snapshot(5, 1)},
			want: State{HardState: hs2, Snapshot: snapMeta(5, 1), Entries: ents(6, 10, 1, 100)},
		},
		{
			name: "snapshot from leader past all entries",
			ops:  []op{save(hs1, ents(1, 3, 1, 100)), snapshot(20, 2), save(hs2, ents(21, 25, 2, 100))},
			want: State{HardState: hs2, Snapshot: snapMeta(20, 2), Entries: ents(21, 25, 2, 100)},
		},
		{
			name: "snapshot covering everything",
			ops:  []op{save(hs1, ents(1, 3, 1, 100)), snapshot(3, 1)},
			want: State{HardState: hs1, Snapshot: snapMeta(3, 1)},
		},
		{
			name: "later snapshot wins",
			ops:  []op{save(hs2, ents(1, 30, 1, 100)), snapshot(10, 1), snapshot(20, 1)},
			want: State{HardState: hs2, Snapshot: snapMeta(20, 1), Entries: ents(21, 30, 1, 100)},
		},
	}
	// Tiny segments make the same histories cross segment boundaries.
	for _, segBytes := range []int64{1 << 20, 700} {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				dir := t.TempDir()
				opts := Options{SegmentBytes: segBytes, NoSync: true}
				l, _ := mustOpen(t, dir, opts)
				for i, o := range tc.ops {
					if err := o(l); err != nil {
						t.Fatalf("op %d: %v", i, err)
					}
				}
				l, st := reopen(t, l, dir, opts)
				if d := diffState(st, tc.want); d != "" {
					t.Fatalf("segment bytes %d: after reopen: %s", segBytes, d)
				}
				// A second reopen sees the same (Open must not change state).
				l, st = reopen(t, l, dir, opts)
				if d := diffState(st, tc.want); d != "" {
					t.Fatalf("segment bytes %d: after second reopen: %s", segBytes, d)
				}
				mustClose(t, l)
			})
		}
	}
}

// TestSaveWritesAndSyncs checks the syscall budget of Save: one write per
// Save with something to record, an fdatasync exactly when raft needs it.
func TestSaveWritesAndSyncs(t *testing.T) {
	l, _ := mustOpen(t, t.TempDir(), Options{SegmentBytes: 1 << 20})
	defer mustClose(t, l)
	steps := []struct {
		name          string
		hs            raftpb.HardState
		ents          []raftpb.Entry
		writes, syncs int
	}{
		{"nothing", raftpb.HardState{}, nil, 0, 0},
		{"new term", raftpb.HardState{Term: 1}, nil, 1, 1},
		{"same hard state", raftpb.HardState{Term: 1}, nil, 0, 0},
		{"vote", raftpb.HardState{Term: 1, Vote: 2}, nil, 1, 1},
		{"entries without hard state", raftpb.HardState{}, ents(1, 3, 1, 300), 1, 1},
		{"commit only", raftpb.HardState{Term: 1, Vote: 2, Commit: 2}, nil, 1, 0},
		{"entries and commit", raftpb.HardState{Term: 1, Vote: 2, Commit: 3}, ents(4, 103, 1, 300), 1, 1},
	}
	for _, s := range steps {
		w, sy := l.writes, l.syncs
		if err := l.Save(s.hs, s.ents); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := l.writes - w; got != s.writes {
			t.Errorf("%s: %d writes, want %d", s.name, got, s.writes)
		}
		if got := l.syncs - sy; got != s.syncs {
			t.Errorf("%s: %d fdatasyncs, want %d", s.name, got, s.syncs)
		}
	}
	w, sy := l.writes, l.syncs
	if err := l.SaveSnapshot(snapMeta(2, 1)); err != nil {
		t.Fatal(err)
	}
	if l.writes-w != 1 || l.syncs-sy != 1 {
		t.Errorf("SaveSnapshot: %d writes %d syncs, want 1 and 1", l.writes-w, l.syncs-sy)
	}
}

func TestSaveRejectsGaps(t *testing.T) {
	l, _ := mustOpen(t, t.TempDir(), Options{SegmentBytes: 1 << 20, NoSync: true})
	defer mustClose(t, l)
	bad := []raftpb.Entry{{Index: 1, Term: 1}, {Index: 3, Term: 1}}
	if err := l.Save(raftpb.HardState{}, bad); err == nil {
		t.Fatal("Save of non-contiguous entries succeeded")
	}
	if l.writes != 0 {
		t.Fatalf("rejected Save wrote %d times", l.writes)
	}
}

func TestClosed(t *testing.T) {
	l, _ := mustOpen(t, t.TempDir(), Options{SegmentBytes: 1 << 20, NoSync: true})
	mustClose(t, l)
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	calls := map[string]error{
		"Save":         l.Save(raftpb.HardState{Term: 1}, nil),
		"SaveSnapshot": l.SaveSnapshot(snapMeta(1, 1)),
		"ReleaseTo":    l.ReleaseTo(1),
	}
	for name, err := range calls {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
}

func TestRotationAndRelease(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentBytes: 8 << 10}
	l, _ := mustOpen(t, dir, opts)
	var all []raftpb.Entry
	for i := uint64(1); i <= 1000; i += 5 {
		batch := ents(i, i+4, 1, 300)
		all = append(all, batch...)
		if err := l.Save(raftpb.HardState{Term: 1, Vote: 1, Commit: i}, batch); err != nil {
			t.Fatal(err)
		}
	}
	hs := raftpb.HardState{Term: 1, Vote: 1, Commit: 996}
	nBefore := len(segmentPaths(t, dir))
	if nBefore < 20 {
		t.Fatalf("%d segments for 300 KB of entries in 8 KiB segments", nBefore)
	}
	for _, p := range segmentPaths(t, dir)[:nBefore-1] {
		if fi, err := os.Stat(p); err != nil || fi.Size() > opts.SegmentBytes {
			t.Fatalf("full segment %s: %v %v", p, fi.Size(), err)
		}
	}

	// Releasing before any snapshot deletes nothing: every entry is needed.
	if err := l.ReleaseTo(600); err != nil {
		t.Fatal(err)
	}
	if n := len(segmentPaths(t, dir)); n != nBefore {
		t.Fatalf("ReleaseTo without snapshot removed segments: %d -> %d", nBefore, n)
	}

	if err := l.SaveSnapshot(snapMeta(600, 1)); err != nil {
		t.Fatal(err)
	}
	// Release further than the snapshot: entries after 600 must survive.
	if err := l.ReleaseTo(900); err != nil {
		t.Fatal(err)
	}
	nAfter := len(segmentPaths(t, dir))
	if nAfter >= nBefore/2 {
		t.Fatalf("ReleaseTo removed too little: %d -> %d segments", nBefore, nAfter)
	}
	want := State{HardState: hs, Snapshot: snapMeta(600, 1), Entries: all[600:]}
	l, st := reopen(t, l, dir, opts)
	if d := diffState(st, want); d != "" {
		t.Fatalf("after release and reopen: %s", d)
	}

	// The log keeps working: overwrite, snapshot, release, reopen.
	hs2 := raftpb.HardState{Term: 2, Vote: 2, Commit: 990}
	if err := l.Save(hs2, ents(991, 1100, 2, 300)); err != nil {
		t.Fatal(err)
	}
	if err := l.SaveSnapshot(snapMeta(1050, 2)); err != nil {
		t.Fatal(err)
	}
	if err := l.ReleaseTo(1050); err != nil {
		t.Fatal(err)
	}
	want = State{HardState: hs2, Snapshot: snapMeta(1050, 2), Entries: ents(1051, 1100, 2, 300)}
	l, st = reopen(t, l, dir, opts)
	if d := diffState(st, want); d != "" {
		t.Fatalf("after second release and reopen: %s", d)
	}
	mustClose(t, l)
}

// TestReleaseKeepsSegmentsOfLaterEntries: a segment is deleted only when the
// snapshot covers all of it, whatever index ReleaseTo is given.
func TestReleaseKeepsSegmentsOfLaterEntries(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentBytes: 4 << 10, NoSync: true}
	l, _ := mustOpen(t, dir, opts)
	hs := raftpb.HardState{Term: 1, Commit: 100}
	if err := l.Save(hs, nil); err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 100; i++ {
		if err := l.Save(raftpb.HardState{}, ents(i, i, 1, 300)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.SaveSnapshot(snapMeta(40, 1)); err != nil {
		t.Fatal(err)
	}
	nBefore := len(segmentPaths(t, dir))
	if err := l.ReleaseTo(1000); err != nil {
		t.Fatal(err)
	}
	paths := segmentPaths(t, dir)
	if len(paths) == nBefore {
		t.Fatalf("nothing released from %d segments", nBefore)
	}
	// Segment names carry the index expected first: the first kept segment
	// must start at or before 41, the first entry the snapshot does not cover.
	if first, _ := parseSegmentName(filepath.Base(paths[0])); first.firstIndex > 41 {
		t.Fatalf("first kept segment %s starts after entry 41", paths[0])
	}
	want := State{HardState: hs, Snapshot: snapMeta(40, 1), Entries: ents(41, 100, 1, 300)}
	l, st := reopen(t, l, dir, opts)
	if d := diffState(st, want); d != "" {
		t.Fatal(d)
	}
	mustClose(t, l)
}

// TestSlowSyncWarning: an fdatasync slower than Options.SlowSync logs
// etcd's "slow fdatasync" warning with took and expected-duration; a
// faster one logs nothing.
func TestSlowSyncWarning(t *testing.T) {
	for _, tc := range []struct {
		name     string
		slowSync time.Duration
		want     bool
	}{
		{"every sync slower than 1ns", time.Nanosecond, true},
		{"no sync slower than an hour", time.Hour, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
			l, _ := mustOpen(t, t.TempDir(), Options{SegmentBytes: 1 << 20, Logger: logger, SlowSync: tc.slowSync})
			defer mustClose(t, l)
			if err := l.Save(raftpb.HardState{Term: 1}, ents(1, 3, 1, 100)); err != nil {
				t.Fatal(err)
			}
			got := strings.Contains(buf.String(), `"msg":"slow fdatasync"`)
			if got != tc.want {
				t.Fatalf("slow fdatasync logged %v, want %v: %s", got, tc.want, buf.String())
			}
			if tc.want && (!strings.Contains(buf.String(), `"took":`) || !strings.Contains(buf.String(), `"expected-duration":1`)) {
				t.Errorf("warning lacks took / expected-duration: %s", buf.String())
			}
		})
	}
}

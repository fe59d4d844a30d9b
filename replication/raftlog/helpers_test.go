package raftlog

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

// entryData is deterministic, mostly non-zero data for entry index at term.
func entryData(index, term uint64, size int) []byte {
	b := make([]byte, size)
	x := index*0x9E3779B97F4A7C15 + term*0xBF58476D1CE4E5B9 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x) | 1
	}
	return b
}

// ents returns entries lo..hi (inclusive) at term with size-byte payloads.
func ents(lo, hi, term uint64, size int) []raftpb.Entry {
	var out []raftpb.Entry
	for i := lo; i <= hi; i++ {
		out = append(out, raftpb.Entry{Index: i, Term: term, Type: raftpb.EntryNormal, Data: entryData(i, term, size)})
	}
	return out
}

func mustOpen(t testing.TB, dir string, opts Options) (*Log, State) {
	t.Helper()
	l, st, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return l, st
}

func mustClose(t testing.TB, l *Log) {
	t.Helper()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// reopen closes l and returns the state a fresh Open sees.
func reopen(t testing.TB, l *Log, dir string, opts Options) (*Log, State) {
	t.Helper()
	mustClose(t, l)
	return mustOpen(t, dir, opts)
}

func diffState(got, want State) string {
	if got.HardState != want.HardState {
		return fmt.Sprintf("hard state %+v, want %+v", got.HardState, want.HardState)
	}
	if got.Snapshot.String() != want.Snapshot.String() {
		return fmt.Sprintf("snapshot %+v, want %+v", got.Snapshot, want.Snapshot)
	}
	return diffEntries(got.Entries, want.Entries)
}

func diffEntries(got, want []raftpb.Entry) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d entries %s, want %d %s", len(got), span(got), len(want), span(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Index != w.Index || g.Term != w.Term || g.Type != w.Type || !bytes.Equal(g.Data, w.Data) {
			return fmt.Sprintf("entry %d: index %d term %d type %v %d bytes, want index %d term %d type %v %d bytes",
				i, g.Index, g.Term, g.Type, len(g.Data), w.Index, w.Term, w.Type, len(w.Data))
		}
	}
	return ""
}

func span(es []raftpb.Entry) string {
	if len(es) == 0 {
		return "[]"
	}
	return fmt.Sprintf("[%d..%d]", es[0].Index, es[len(es)-1].Index)
}

// segmentPaths lists the segment files of the log in dir, oldest first.
func segmentPaths(t testing.TB, dir string) []string {
	t.Helper()
	segs, err := listSegments(filepath.Join(dir, logDirName))
	if err != nil {
		t.Fatalf("listSegments: %v", err)
	}
	var out []string
	for _, s := range segs {
		out = append(out, filepath.Join(dir, logDirName, s.name()))
	}
	return out
}

package raftlog

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

// tornFixture is a one-segment log whose last Save wrote entries last.. of
// the returned want, from offset start to end of the segment file.
type tornFixture struct {
	dir        string
	opts       Options
	path       string
	data       []byte // segment contents after the last Save
	start, end int    // the last Save's bytes
	before     State  // state before the last Save
	after      State  // state after it
}

func newTornFixture(t *testing.T, last []raftpb.Entry) tornFixture {
	t.Helper()
	fx := tornFixture{dir: t.TempDir(), opts: Options{SegmentBytes: 8 << 10, NoSync: true}}
	l, _ := mustOpen(t, fx.dir, fx.opts)
	hs := raftpb.HardState{Term: 1, Vote: 1, Commit: 5}
	first := ents(1, 10, 1, 300)
	if err := l.Save(hs, first); err != nil {
		t.Fatal(err)
	}
	fx.start = int(l.off)
	if err := l.Save(raftpb.HardState{}, last); err != nil {
		t.Fatal(err)
	}
	fx.end = int(l.off)
	mustClose(t, l)
	fx.before = State{HardState: hs, Entries: first}
	fx.after = State{HardState: hs, Entries: concat(first, last)}
	fx.path = segmentPaths(t, fx.dir)[0]
	var err error
	if fx.data, err = os.ReadFile(fx.path); err != nil {
		t.Fatal(err)
	}
	return fx
}

// openDamaged writes data as the segment, opens, and checks that the log
// is repaired: the state is want and a new Save after it reads back.
func (fx tornFixture) openDamaged(t *testing.T, data []byte, want State) {
	t.Helper()
	if err := os.WriteFile(fx.path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	l, st, err := Open(fx.dir, fx.opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if d := diffState(st, want); d != "" {
		l.Close()
		t.Fatalf("state: %s", d)
	}
	next := want.Entries[len(want.Entries)-1].Index + 1
	more := ents(next, next, 7, 50)
	if err := l.Save(raftpb.HardState{}, more); err != nil {
		t.Fatal(err)
	}
	l, st = reopen(t, l, fx.dir, fx.opts)
	want.Entries = concat(want.Entries, more)
	if d := diffState(st, want); d != "" {
		t.Fatalf("after repair and append: %s", d)
	}
	mustClose(t, l)
}

// TestTornTail cuts the last record at every byte: truncating the file, or
// zero-filling from the cut (what preallocated space looks like). Open must
// return the state of the last complete record and keep working.
func TestTornTail(t *testing.T) {
	fx := newTornFixture(t, ents(11, 11, 1, 300))
	damage := []struct {
		name string
		cut  func(data []byte, at int) []byte
	}{
		{"truncated", func(data []byte, at int) []byte { return data[:at] }},
		{"zero filled", func(data []byte, at int) []byte {
			d := append([]byte(nil), data...)
			clear(d[at:])
			return d
		}},
	}
	for _, dm := range damage {
		t.Run(dm.name, func(t *testing.T) {
			for at := fx.start; at < fx.end; at++ {
				fx.openDamaged(t, dm.cut(fx.data, at), fx.before)
				if t.Failed() {
					t.Fatalf("cut at offset %d of record [%d,%d)", at, fx.start, fx.end)
				}
			}
			// The complete record survives the same treatment.
			fx.openDamaged(t, dm.cut(fx.data, fx.end), fx.after)
		})
	}
}

// TestTornSector: a crash lost one sector in the middle of an unsynced write
// while later sectors of it persisted. That is a torn tail, not corruption.
func TestTornSector(t *testing.T) {
	fx := newTornFixture(t, ents(11, 12, 1, 1500))
	d := append([]byte(nil), fx.data...)
	s := (fx.start/sectorSize + 2) * sectorSize
	clear(d[s : s+sectorSize])
	if s+sectorSize >= fx.end {
		t.Fatalf("fixture too small: sector %d, write ends at %d", s, fx.end)
	}
	fx.openDamaged(t, d, fx.before)
}

// TestCorruption: damage that a crash cannot explain is ErrCorrupt.
func TestCorruption(t *testing.T) {
	type fixture struct {
		dir   string
		paths []string
		recs  [][2]int // record spans in paths[0]
	}
	opts := Options{SegmentBytes: 16 << 10, NoSync: true}
	build := func(t *testing.T) fixture {
		dir := t.TempDir()
		l, _ := mustOpen(t, dir, opts)
		var recs [][2]int
		for i := uint64(1); i <= 200; i++ {
			start := int(l.off)
			if err := l.Save(raftpb.HardState{}, ents(i, i, 1, 300)); err != nil {
				t.Fatal(err)
			}
			if len(l.segs) == 1 {
				recs = append(recs, [2]int{start, int(l.off)})
			}
		}
		mustClose(t, l)
		paths := segmentPaths(t, dir)
		if len(paths) < 3 {
			t.Fatalf("want several segments, got %d", len(paths))
		}
		return fixture{dir, paths, recs}
	}
	flip := func(path string, off int) error {
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		data[off] ^= 0x10
		return os.WriteFile(path, data, 0o600)
	}
	middleOfLast := func(fx fixture) (string, int) {
		data, err := os.ReadFile(fx.paths[len(fx.paths)-1])
		if err != nil {
			panic(err)
		}
		// The second entry record of the last segment, found by scanning.
		off, n := 0, 0
		scanSegment(data, func(typ byte, payload []byte) error {
			if typ == recEntry {
				n++
			}
			if n < 2 {
				off += headerSize + 1 + len(payload)
			}
			return nil
		})
		return fx.paths[len(fx.paths)-1], off
	}
	tests := []struct {
		name   string
		damage func(fx fixture) error
	}{
		{"body of a record in an old segment", func(fx fixture) error {
			r := fx.recs[len(fx.recs)/2]
			return flip(fx.paths[0], (r[0]+r[1])/2)
		}},
		{"crc of a record in an old segment", func(fx fixture) error {
			return flip(fx.paths[0], fx.recs[3][0]+5)
		}},
		{"length of a record in an old segment", func(fx fixture) error {
			return flip(fx.paths[0], fx.recs[3][0]+3)
		}},
		{"torn tail of an old segment", func(fx fixture) error {
			r := fx.recs[len(fx.recs)-1]
			return os.Truncate(fx.paths[0], int64(r[1]-10))
		}},
		{"body of a middle record in the last segment", func(fx fixture) error {
			p, off := middleOfLast(fx)
			return flip(p, off+headerSize+100)
		}},
		{"crc of a middle record in the last segment", func(fx fixture) error {
			p, off := middleOfLast(fx)
			return flip(p, off+4)
		}},
		{"length of a middle record in the last segment", func(fx fixture) error {
			p, off := middleOfLast(fx)
			return flip(p, off)
		}},
		{"length past the end in the last segment", func(fx fixture) error {
			p, off := middleOfLast(fx)
			return flip(p, off+3)
		}},
		{"zeroed record header in the last segment", func(fx fixture) error {
			p, off := middleOfLast(fx)
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			clear(data[off : off+headerSize])
			return os.WriteFile(p, data, 0o600)
		}},
		{"missing middle segment", func(fx fixture) error {
			return os.Remove(fx.paths[1])
		}},
		{"segment renamed out of sequence", func(fx fixture) error {
			last := fx.paths[len(fx.paths)-1]
			s, _ := parseSegmentName(filepath.Base(last))
			s.seq++
			return os.Rename(last, filepath.Join(filepath.Dir(last), s.name()))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fx := build(t)
			if err := tc.damage(fx); err != nil {
				t.Fatal(err)
			}
			l, st, err := Open(fx.dir, opts)
			if !errors.Is(err, ErrCorrupt) {
				if err == nil {
					l.Close()
				}
				t.Fatalf("Open: err %v (state entries %s), want ErrCorrupt", err, span(st.Entries))
			}
		})
	}
}

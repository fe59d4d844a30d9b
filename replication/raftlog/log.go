// Package raftlog is the durable raft log of one member: hard state,
// entries and snapshot points, kept in append-only segment files.
//
// Layout: dir/log/ holds segments named %016x-%016x.wal (sequence, index of
// the first entry expected in it), so names sort in write order and sequence
// numbers are consecutive. Each segment is preallocated to
// Options.SegmentBytes and starts with a segment record, the current hard
// state and the latest snapshot record, so the oldest segments can be
// deleted (ReleaseTo) without losing either. Records carry a length and a
// crc32c (see record.go).
//
// Durability: a Save that writes entries, or a hard state raft.MustSync asks
// for, and every SaveSnapshot, is on disk (one write, one fdatasync) before
// it returns. A crash may leave a torn record at the tail of the last
// segment; Open cuts it off. Damage anywhere else is ErrCorrupt.
//
// Concurrency: Save, SaveSnapshot and ReleaseTo must be called from one
// goroutine (raft's Ready loop). Close may be called from any goroutine; a
// mutex orders it with the other calls.
//
// The data directory is locked by the server; raftlog takes no lock file.
package raftlog

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// ErrCorrupt wraps every error about damaged log contents (as opposed to a
// torn tail, which Open repairs).
var ErrCorrupt = errors.New("raftlog: log corrupt")

// ErrClosed is returned by calls on a closed Log.
var ErrClosed = errors.New("raftlog: log closed")

// DefaultSegmentBytes is the segment size when Options.SegmentBytes is 0.
const DefaultSegmentBytes = 64 << 20

// logDirName is the directory under the Open dir holding the segments. It
// appears (by rename) only once its first segment is durable, so its
// existence is what Exists reports.
const logDirName = "log"

// maxKeptBuffer bounds the write buffer kept between Saves.
const maxKeptBuffer = 4 << 20

// Options configure a Log.
type Options struct {
	// SegmentBytes is the size segments are preallocated to (fallocate), so
	// that fdatasync after an append need not update the file size. A Save
	// that would take a segment past it goes to a new segment; a single Save
	// larger than it makes a segment bigger. Default 64 MiB.
	SegmentBytes int64
	// NoSync skips every fsync: for tests and benchmarks only
	// (--unsafe-no-fsync). A crash can then lose acknowledged data.
	NoSync bool
	// Logger gets repairs, rotations and releases; nil discards them.
	Logger *slog.Logger
	// SlowSync is how long an fdatasync may take before it is logged as
	// etcd's "slow fdatasync" warning. Default 1 s, etcd's fixed value.
	SlowSync time.Duration
}

// DefaultSlowSync is etcd's threshold of the "slow fdatasync" warning.
const DefaultSlowSync = time.Second

// State is what a Log held when opened.
type State struct {
	HardState raftpb.HardState
	Snapshot  raftpb.SnapshotMetadata // latest saved snapshot point (zero if none)
	Entries   []raftpb.Entry          // entries after Snapshot.Index, in index order, contiguous
}

// Log is an open raft log. See the package comment for the concurrency rules.
type Log struct {
	mu     sync.Mutex
	dir    string // dir/log
	opts   Options
	logger *slog.Logger

	segs      []segment // oldest first; the last one is active
	f         *os.File  // active segment
	off       int64     // where the next record goes in f
	headerEnd int64     // end of f's segment record: less data means nothing to rotate away

	hs        raftpb.HardState        // last hard state written
	snap      raftpb.SnapshotMetadata // last snapshot point written
	lastIndex uint64                  // index of the last entry, or the snapshot index if later

	buf []byte // reused record buffer: one write per Save

	// err is sticky: after a failed write or sync the file contents are
	// unknown, so every later call fails.
	err    error
	closed bool

	// counters for tests: write and fdatasync calls on the active segment
	writes, syncs int
}

// Exists reports whether a log was created in dir (by Open).
func Exists(dir string) bool {
	st, err := os.Stat(filepath.Join(dir, logDirName))
	return err == nil && st.IsDir()
}

// Open opens the log in dir, creating it (and dir) if there is none, and
// returns what it holds. A torn record at the tail of the last segment is
// cut off (with everything after it); any other damage is ErrCorrupt.
func Open(dir string, opts Options) (*Log, State, error) {
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = DefaultSegmentBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.SlowSync <= 0 {
		opts.SlowSync = DefaultSlowSync
	}
	l := &Log{dir: filepath.Join(dir, logDirName), opts: opts, logger: opts.Logger}
	if !Exists(dir) {
		if err := create(dir, opts); err != nil {
			return nil, State{}, fmt.Errorf("raftlog: create in %s: %w", dir, err)
		}
	}
	st, err := l.load()
	if err != nil {
		if l.f != nil {
			l.f.Close()
		}
		return nil, State{}, err
	}
	return l, st, nil
}

// create makes dir/log with an empty first segment, atomically: it is built
// as dir/log.tmp and renamed.
func create(dir string, opts Options) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp := filepath.Join(dir, logDirName+tmpExt)
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return err
	}
	first := segment{seq: 0, firstIndex: 1}
	f, err := createSegment(tmp, first, appendSegmentRecord(nil, first.seq, first.firstIndex), opts.SegmentBytes, opts.NoSync)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if !opts.NoSync {
		if err := syncDir(tmp); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, filepath.Join(dir, logDirName)); err != nil {
		return err
	}
	if opts.NoSync {
		return nil
	}
	return syncDir(dir)
}

// load replays every segment and opens the last one for appending.
func (l *Log) load() (State, error) {
	segs, err := listSegments(l.dir)
	if err != nil {
		return State{}, fmt.Errorf("raftlog: %w", err)
	}
	var (
		r      replay
		active struct {
			path      string
			end, size int64
			bad       *badRecord
		}
	)
	for i := range segs {
		seg := &segs[i]
		last := i == len(segs)-1
		path := filepath.Join(l.dir, seg.name())
		data, err := os.ReadFile(path)
		if err != nil {
			return State{}, fmt.Errorf("raftlog: %w", err)
		}
		first, sawEntry := true, false
		end, bad, err := scanSegment(data, func(typ byte, payload []byte) error {
			err := r.record(seg, first, typ, payload)
			first = false
			sawEntry = sawEntry || typ == recEntry
			return err
		})
		if err != nil {
			return State{}, fmt.Errorf("%w: %s: %w", ErrCorrupt, path, err)
		}
		if first {
			// Not even the segment record: segments are created complete,
			// so this is damage, not a torn write.
			return State{}, fmt.Errorf("%w: %s: no segment record", ErrCorrupt, path)
		}
		strictEOF := int64(len(data)) >= l.opts.SegmentBytes && sawEntry
		if bad != nil && (!last || !isTornTail(data, bad, strictEOF)) {
			return State{}, fmt.Errorf("%w: %s: %s", ErrCorrupt, path, bad)
		}
		if last {
			active.path, active.end, active.size, active.bad = path, int64(end), int64(len(data)), bad
		}
	}
	ents, err := r.finish()
	if err != nil {
		return State{}, err
	}
	if err := l.openActive(active.path, active.end, active.size, active.bad); err != nil {
		return State{}, fmt.Errorf("raftlog: %w", err)
	}
	l.headerEnd = segmentRecordSize
	l.segs = segs
	l.hs, l.snap = r.hs, r.snap
	l.lastIndex = r.snap.Index
	if n := len(ents); n > 0 {
		l.lastIndex = ents[n-1].Index
	}
	return State{HardState: r.hs, Snapshot: r.snap, Entries: ents}, nil
}

// openActive opens the last segment for appending at end. If it has a torn
// tail (bad), the tail is cut off and the space zeroed by truncating and
// preallocating again.
func (l *Log) openActive(path string, end, size int64, bad *badRecord) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	l.f, l.off = f, end
	if bad == nil && size >= l.opts.SegmentBytes {
		return nil
	}
	if bad != nil {
		l.logger.Warn("raftlog: cutting off torn tail of last segment",
			"segment", path, "offset", end, "discarded_bytes", size-end, "reason", bad.reason)
		if err := f.Truncate(end); err != nil {
			return err
		}
	}
	if err := preallocate(f, l.opts.SegmentBytes); err != nil {
		return err
	}
	if l.opts.NoSync {
		return nil
	}
	return f.Sync()
}

// Save appends ents and records hs (unless raft.IsEmptyHardState(hs)).
// An entry with index i replaces every entry saved before with index >= i.
// ents must be contiguous. The records go out in one write; it is synced
// before Save returns if ents is not empty or raft.MustSync says hs needs
// it. With nothing new to record, Save makes no system call.
func (l *Log) Save(hs raftpb.HardState, ents []raftpb.Entry) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return err
	}
	writeHS := !raft.IsEmptyHardState(hs) && !hardStateEqual(hs, l.hs)
	if !writeHS && len(ents) == 0 {
		return nil
	}
	for i := 1; i < len(ents); i++ {
		if ents[i].Index != ents[i-1].Index+1 {
			return fmt.Errorf("raftlog: entries not contiguous: %d after %d", ents[i].Index, ents[i-1].Index)
		}
	}
	sync := len(ents) > 0 || raft.MustSync(hs, l.hs, 0)
	buf := l.buf[:0]
	var err error
	for i := range ents {
		if buf, err = appendRecord(buf, recEntry, &ents[i]); err != nil {
			return fmt.Errorf("raftlog: encode entry %d: %w", ents[i].Index, err)
		}
	}
	if writeHS {
		if buf, err = appendRecord(buf, recHardState, &hs); err != nil {
			return fmt.Errorf("raftlog: encode hard state: %w", err)
		}
	}
	if err := l.write(buf, sync); err != nil {
		return err
	}
	l.keepBuffer(buf)
	if writeHS {
		l.hs = hs
	}
	if n := len(ents); n > 0 {
		l.lastIndex = ents[n-1].Index
		active := &l.segs[len(l.segs)-1]
		active.maxIndex = max(active.maxIndex, l.lastIndex)
	}
	return nil
}

// SaveSnapshot durably records a snapshot point. From then on Open returns
// only entries after meta.Index; later entries already saved are kept.
func (l *Log) SaveSnapshot(meta raftpb.SnapshotMetadata) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return err
	}
	buf, err := appendRecord(l.buf[:0], recSnapshot, &meta)
	if err != nil {
		return fmt.Errorf("raftlog: encode snapshot: %w", err)
	}
	if err := l.write(buf, true); err != nil {
		return err
	}
	l.keepBuffer(buf)
	l.snap = meta
	l.lastIndex = max(l.lastIndex, meta.Index)
	return nil
}

// ReleaseTo deletes the oldest segments whose entries all have index < index
// and are covered by the latest snapshot. The active segment is never
// deleted. Open afterwards still returns the same State: later segments
// start with the hard state and snapshot record current when they were made.
func (l *Log) ReleaseTo(index uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return err
	}
	released := 0
	for len(l.segs) > 1 {
		s := l.segs[0]
		if s.maxIndex >= index || s.maxIndex > l.snap.Index {
			break
		}
		// Oldest first, each removal durable before the next: a crash
		// leaves a suffix of the segments, never a gap.
		if err := os.Remove(filepath.Join(l.dir, s.name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("raftlog: release: %w", err)
		}
		if !l.opts.NoSync {
			if err := syncDir(l.dir); err != nil {
				return fmt.Errorf("raftlog: release: %w", err)
			}
		}
		l.segs = l.segs[1:]
		released++
	}
	if released > 0 {
		l.logger.Info("raftlog: released segments", "count", released, "below_index", index,
			"first_kept", l.segs[0].name())
	}
	return nil
}

// Close syncs and closes the log. Calls after Close return ErrClosed; a
// second Close returns nil.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	var err error
	if l.err == nil && !l.opts.NoSync {
		err = fdatasync(l.f)
	}
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("raftlog: close: %w", err)
	}
	return nil
}

func (l *Log) usable() error {
	if l.closed {
		return ErrClosed
	}
	return l.err
}

// write appends buf to the active segment with one write call, first moving
// to a new segment if buf does not fit, and syncs if asked to. Any failure
// is sticky.
func (l *Log) write(buf []byte, sync bool) error {
	if l.off+int64(len(buf)) > l.opts.SegmentBytes && l.off > l.headerEnd {
		if err := l.rotate(); err != nil {
			l.err = fmt.Errorf("raftlog: new segment: %w", err)
			return l.err
		}
	}
	l.writes++
	if _, err := l.f.WriteAt(buf, l.off); err != nil {
		l.err = fmt.Errorf("raftlog: write: %w", err)
		return l.err
	}
	l.off += int64(len(buf))
	if !sync || l.opts.NoSync {
		return nil
	}
	l.syncs++
	start := time.Now()
	err := fdatasync(l.f)
	if took := time.Since(start); took > l.opts.SlowSync {
		l.logger.Warn("slow fdatasync", "took", took, "expected-duration", l.opts.SlowSync)
	}
	if err != nil {
		l.err = fmt.Errorf("raftlog: %w", err)
		return l.err
	}
	return nil
}

// rotate makes the active segment durable, trims its unused preallocated
// space, and starts the next segment with the current hard state and
// snapshot record.
func (l *Log) rotate() error {
	if err := l.f.Truncate(l.off); err != nil {
		return err
	}
	if !l.opts.NoSync {
		if err := l.f.Sync(); err != nil {
			return err
		}
	}
	next := segment{seq: l.segs[len(l.segs)-1].seq + 1, firstIndex: l.lastIndex + 1}
	header := appendSegmentRecord(nil, next.seq, next.firstIndex)
	var err error
	if !raft.IsEmptyHardState(l.hs) {
		if header, err = appendRecord(header, recHardState, &l.hs); err != nil {
			return err
		}
	}
	if l.snap.Index != 0 || l.snap.Term != 0 {
		if header, err = appendRecord(header, recSnapshot, &l.snap); err != nil {
			return err
		}
	}
	f, err := createSegment(l.dir, next, header, l.opts.SegmentBytes, l.opts.NoSync)
	if err != nil {
		return err
	}
	if !l.opts.NoSync {
		if err := syncDir(l.dir); err != nil {
			f.Close()
			return err
		}
	}
	old := l.f
	l.f, l.off, l.headerEnd = f, int64(len(header)), segmentRecordSize
	l.segs = append(l.segs, next)
	l.logger.Debug("raftlog: new segment", "segment", next.name())
	if err := old.Close(); err != nil {
		l.logger.Warn("raftlog: closing old segment", "err", err)
	}
	return nil
}

// keepBuffer keeps buf for the next call unless it grew unusually large.
func (l *Log) keepBuffer(buf []byte) {
	if cap(buf) <= maxKeptBuffer {
		l.buf = buf[:0]
	} else {
		l.buf = nil
	}
}

func hardStateEqual(a, b raftpb.HardState) bool {
	return a.Term == b.Term && a.Vote == b.Vote && a.Commit == b.Commit
}

package storage

import (
	"context"
	"errors"
	"os"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Space is the store's footprint, etcd's db_size and db_size_in_use.
type Space struct {
	// Total is the disk space Badger's files occupy (allocated blocks, so
	// that preallocated, sparse log files count for what they hold).
	Total int64
	// InUse is Total less what Badger knows to be stale in its tables:
	// what a defragmentation cannot give back.
	InUse int64
}

// MeasureSpace measures the store's files now.
func (s *Store) MeasureSpace() (Space, error) {
	opts := s.db.Opts()
	dirs := []string{opts.Dir}
	if opts.ValueDir != "" && opts.ValueDir != opts.Dir {
		dirs = append(dirs, opts.ValueDir)
	}
	var sp Space
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return Space{}, err
		}
		for _, e := range entries {
			if !e.Type().IsRegular() {
				continue
			}
			fi, err := e.Info()
			if errors.Is(err, os.ErrNotExist) {
				continue // removed by a compaction meanwhile
			}
			if err != nil {
				return Space{}, err
			}
			sp.Total += allocated(fi)
		}
	}
	var stale int64
	for _, t := range s.db.Tables() {
		stale += int64(t.StaleDataSize)
	}
	sp.InUse = max(sp.Total-stale, 0)
	return sp, nil
}

// allocated is the disk space a file occupies: its allocated blocks where
// the platform reports them (Badger preallocates sparse log files), else
// its length.
func allocated(fi os.FileInfo) int64 {
	v := reflect.ValueOf(fi.Sys())
	if v.Kind() == reflect.Pointer && !v.IsNil() {
		v = v.Elem()
	}
	if v.Kind() == reflect.Struct {
		if f := v.FieldByName("Blocks"); f.IsValid() && f.CanInt() {
			// st_blocks counts 512-byte units on every platform that has it.
			return f.Int() * 512
		}
	}
	return fi.Size()
}

// SpaceMeter caches MeasureSpace for callers that ask on every request
// (the quota check) or every scrape. Its readers never wait for a
// measurement another caller is making.
type SpaceMeter struct {
	s      *Store
	maxAge time.Duration

	mu      sync.Mutex   // held while measuring
	at      atomic.Int64 // when last measured (Unix ns)
	total   atomic.Int64
	inUse   atomic.Int64
	charged atomic.Int64
}

// NewSpaceMeter returns a meter whose answers are at most maxAge old
// (unless a measurement fails or another caller is making one).
func NewSpaceMeter(s *Store, maxAge time.Duration) *SpaceMeter {
	return &SpaceMeter{s: s, maxAge: maxAge}
}

// Get returns a recent measurement.
func (m *SpaceMeter) Get() Space {
	m.maybeRefresh()
	return Space{Total: m.total.Load(), InUse: m.inUse.Load()}
}

// Estimate is the last measurement plus what was charged since: the
// quota check's view of the size, which must not lag behind a burst of
// writes.
func (m *SpaceMeter) Estimate() int64 {
	m.maybeRefresh()
	return m.total.Load() + m.charged.Load()
}

// Charge adds n bytes about to be written to the estimate, until the next
// measurement.
func (m *SpaceMeter) Charge(n int64) { m.charged.Add(n) }

// Refresh measures now.
func (m *SpaceMeter) Refresh() Space {
	m.mu.Lock()
	m.refreshLocked()
	m.mu.Unlock()
	return Space{Total: m.total.Load(), InUse: m.inUse.Load()}
}

func (m *SpaceMeter) maybeRefresh() {
	if time.Now().UnixNano()-m.at.Load() <= int64(m.maxAge) && m.at.Load() != 0 {
		return
	}
	if m.at.Load() == 0 {
		m.mu.Lock() // the first answer waits for a measurement
	} else if !m.mu.TryLock() {
		return
	}
	m.refreshLocked()
	m.mu.Unlock()
}

func (m *SpaceMeter) refreshLocked() {
	sp, err := m.s.MeasureSpace()
	if err != nil {
		m.s.log.Warn("measuring the store's size", "err", err)
		return
	}
	m.total.Store(sp.Total)
	m.inUse.Store(sp.InUse)
	m.charged.Store(0)
	m.at.Store(time.Now().UnixNano())
}

// defragMarker is written, then dropped, to make Badger flush its
// memtables (DropPrefix is Badger's only public way to force a flush).
var defragMarker = []byte("m/defrag-flush")

// Defragment gives back to the file system the space that compaction and
// deletions freed: it flushes the memtables, compacts every LSM level into
// one (dropping overwritten and deleted versions) and rewrites value-log
// files that are mostly garbage. Writes wait while the memtables are
// flushed; reads go on throughout.
func (s *Store) Defragment(ctx context.Context) error {
	s.defragMu.Lock()
	defer s.defragMu.Unlock()
	if err := s.flushAndFlatten(ctx); err != nil {
		return err
	}
	// Value-log GC rewrites live values, a write like any other, so it runs
	// under applyMu. Flattening reports the garbage it leaves in the value
	// log asynchronously, so GC that finds nothing at first is retried for
	// a while before defragmentation settles for what is left.
	rewrote := false
	for i, idle := 0, 0; i < 64 && ctx.Err() == nil; i++ {
		err := s.writeLocked(func() error { return s.db.RunValueLogGC(0.3) })
		if err == nil {
			rewrote = true
			continue
		}
		if !errors.Is(err, badger.ErrNoRewrite) || rewrote || idle >= 10 {
			break
		}
		idle++
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	return ctx.Err()
}

// flushAndFlatten pushes Badger's memtables into L0 tables and compacts
// every level into one, dropping deleted versions. Badger refuses every
// write while it flushes, and keeps deleted versions while a value-log GC is
// in flight, so both run with every writer idle, as etcd's defragmentation
// blocks writes: the applier and value-log GC are held on applyMu, and the
// compactor, which is only given work by the applier's commits, is let
// finish its current work first.
func (s *Store) flushAndFlatten(ctx context.Context) error {
	for {
		if err := s.waitCompactorIdle(ctx); err != nil {
			return err
		}
		s.applyMu.Lock()
		if s.compactorIdle() {
			break
		}
		s.applyMu.Unlock()
	}
	defer s.applyMu.Unlock()
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(defragMarker, nil) }); err != nil {
		return err
	}
	if err := s.db.DropPrefix(defragMarker); err != nil {
		return err
	}
	return s.db.Flatten(2)
}

func (s *Store) compactorIdle() bool {
	s.compactor.mu.Lock()
	target := s.compactor.target
	s.compactor.mu.Unlock()
	done, err := s.readMeta(metaCompactDone, -1)
	return err == nil && done >= target
}

func (s *Store) waitCompactorIdle(ctx context.Context) error {
	for !s.compactorIdle() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

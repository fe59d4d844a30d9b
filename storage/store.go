package storage

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// Options size Badger. Zero values take the defaults in DefaultOptions.
type Options struct {
	Dir string
	// BlockCacheBytes and IndexCacheBytes bound Badger's caches; together
	// with MemTableBytes*NumMemtables they bound sett's resident memory,
	// independent of the number of keys.
	BlockCacheBytes int64
	IndexCacheBytes int64
	MemTableBytes   int64
	NumMemtables    int
	// ResidencyTrimInterval is how often the resident pages of mapped
	// table files are dropped (see trimTableResidency); negative disables.
	ResidencyTrimInterval time.Duration
	// UnsafeNoSync skips the fsync that makes every applied batch durable
	// before it is visible (etcd's --unsafe-no-fsync). The zero value syncs.
	UnsafeNoSync bool
	// LogDurable says a log in front of the store (raft's) makes every
	// entry durable before it is applied: Apply then does not fsync, a
	// crash may lose a suffix of applied batches (never a middle one, and
	// never half a batch), and the log replays them. Sync makes everything
	// applied durable, before the log forgets the entries.
	LogDurable bool
	Logger     *slog.Logger
}

// DefaultOptions are the sizes sett runs with unless flags say otherwise.
func DefaultOptions(dir string) Options {
	return Options{
		Dir: dir,
		// Tables are uncompressed and read straight from their mapping,
		// so the block cache only saves block parsing: keep it small.
		BlockCacheBytes: 8 << 20,
		IndexCacheBytes: 16 << 20,
		// A memtable costs about 1.3x its size in arena; a revision larger
		// than 15% of it is written in chunks (see chunked.go).
		MemTableBytes: 16 << 20,
		NumMemtables:  2,

		ResidencyTrimInterval: 5 * time.Second,
	}
}

// ErrDataDirInUse means another process holds the data directory.
var ErrDataDirInUse = errors.New("data directory is in use by another process")

// Store is the MVCC state machine. Reads may run concurrently with each
// other and with Apply; Apply calls must come from one goroutine at a time
// (the applier), in log order.
type Store struct {
	db  *badger.DB
	log *slog.Logger

	// rev, compactRev and applied mirror the meta keys of the last committed
	// batch. They are advanced only after the batch is durable and visible.
	rev        atomic.Int64
	compactRev atomic.Int64
	applied    atomic.Uint64
	term       atomic.Uint64

	leases     *leaseSet
	alarmState *alarmSet

	// applyMu is held by every Badger write (the applier, the compactor,
	// maintenance). Besides ordering them, it makes the applier's explicit
	// sync sound: Badger syncs only the active memtable's log, so no other
	// write may rotate the memtable between a commit and its sync.
	applyMu sync.Mutex
	// defragMu runs one defragmentation at a time.
	defragMu sync.Mutex
	noSync   bool
	// logDurable: Apply leaves syncing to Sync (see Options.LogDurable).
	logDurable bool
	wal        *walSyncer
	// valueThreshold: values at least this long go to Badger's value log,
	// which then needs syncing too.
	valueThreshold int64

	compactor compactor
	trimStop  chan struct{}
	trimDone  chan struct{}
	closeOnce sync.Once
}

// Open opens or creates the store in opts.Dir.
func Open(opts Options) (*Store, error) {
	def := DefaultOptions(opts.Dir)
	if opts.BlockCacheBytes == 0 {
		opts.BlockCacheBytes = def.BlockCacheBytes
	}
	if opts.IndexCacheBytes == 0 {
		opts.IndexCacheBytes = def.IndexCacheBytes
	}
	if opts.MemTableBytes == 0 {
		opts.MemTableBytes = def.MemTableBytes
	}
	if opts.NumMemtables == 0 {
		opts.NumMemtables = def.NumMemtables
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	bo := badger.DefaultOptions(opts.Dir).
		WithLogger(badgerLogger{opts.Logger}).
		WithSyncWrites(false).
		WithDetectConflicts(false).
		WithBlockCacheSize(opts.BlockCacheBytes).
		WithIndexCacheSize(opts.IndexCacheBytes).
		WithMemTableSize(opts.MemTableBytes).
		WithNumMemtables(opts.NumMemtables).
		WithNumLevelZeroTables(opts.NumMemtables + 1).
		WithNumLevelZeroTablesStall(opts.NumMemtables + 6).
		WithCompression(options.None).
		WithNumCompactors(2).
		WithValueLogFileSize(256 << 20).
		WithMetricsEnabled(false)
	// Values stay in the LSM tree (one WAL fsync per commit) up to 1 MiB,
	// or less when a small memtable makes Badger's batch limit smaller.
	bo.ValueThreshold = min(1<<20, opts.MemTableBytes*15/100/4)
	db, err := badger.Open(bo)
	if err != nil {
		if strings.Contains(err.Error(), "Cannot acquire directory lock") {
			return nil, fmt.Errorf("%w: %s", ErrDataDirInUse, opts.Dir)
		}
		return nil, fmt.Errorf("open badger in %s: %w", opts.Dir, err)
	}
	s := &Store{db: db, log: opts.Logger, noSync: opts.UnsafeNoSync, logDurable: opts.LogDurable, valueThreshold: bo.ValueThreshold}
	if s.wal, err = newWALSyncer(opts.Dir); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.rollbackPending(); err != nil {
		db.Close()
		return nil, fmt.Errorf("roll back incomplete revision: %w", err)
	}
	if err := s.loadMeta(); err != nil {
		db.Close()
		return nil, err
	}
	if s.alarmState, err = loadAlarms(db); err != nil {
		db.Close()
		return nil, err
	}
	if s.leases, err = loadLeases(db); err != nil {
		db.Close()
		return nil, err
	}
	s.compactor.start(s)
	s.startResidencyTrim(opts.Dir, opts.ResidencyTrimInterval)
	return s, nil
}

func (s *Store) loadMeta() error {
	return s.db.View(func(txn *badger.Txn) error {
		read := func(key []byte, def int64) (int64, error) { return txnReadInt(txn, key, def) }
		// An empty store is at revision 1, as etcd's is.
		rev, err := read(metaRevision, 1)
		if err != nil {
			return err
		}
		// etcd's compaction point starts below every revision.
		compact, err := read(metaCompact, -1)
		if err != nil {
			return err
		}
		applied, err := read(metaApplied, 0)
		if err != nil {
			return err
		}
		term, err := read(metaTerm, 0)
		if err != nil {
			return err
		}
		s.rev.Store(rev)
		s.compactRev.Store(compact)
		s.applied.Store(uint64(applied))
		s.term.Store(uint64(term))
		return nil
	})
}

func (s *Store) startResidencyTrim(dir string, every time.Duration) {
	s.trimStop, s.trimDone = make(chan struct{}), make(chan struct{})
	if every == 0 {
		every = DefaultOptions(dir).ResidencyTrimInterval
	}
	go func() {
		defer close(s.trimDone)
		if every < 0 {
			<-s.trimStop
			return
		}
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-s.trimStop:
				return
			case <-t.C:
				if _, err := trimTableResidency(dir); err != nil {
					s.log.Debug("trim table residency", "err", err)
				}
			}
		}
	}()
}

// Rev is the newest applied revision.
func (s *Store) Rev() int64 { return s.rev.Load() }

// CompactRev is the compaction point: revisions below it are unreadable.
func (s *Store) CompactRev() int64 { return s.compactRev.Load() }

// AppliedIndex is the index of the last applied command.
func (s *Store) AppliedIndex() uint64 { return s.applied.Load() }

// Term is the persisted raft term (bumped by the replication layer).
func (s *Store) Term() uint64 { return s.term.Load() }

// SetTerm durably records the term.
func (s *Store) SetTerm(term uint64) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	err := s.db.Update(func(txn *badger.Txn) error {
		return txn.Set(metaTerm, encodeInt(int64(term)))
	})
	if err == nil {
		err = s.syncLocked(false)
	}
	if err == nil {
		s.term.Store(term)
	}
	return err
}

// syncLocked makes every committed write durable; valueLog says whether
// a value may have gone to Badger's value log since the last sync. Badger
// itself runs without per-write syncs; the caller holds applyMu, so the
// memtable logs the walSyncer follows hold every unsynced write.
func (s *Store) syncLocked(valueLog bool) error {
	if s.noSync {
		return nil
	}
	if valueLog {
		if err := s.db.Sync(); err != nil {
			return err
		}
	}
	return s.wal.sync()
}

// Sync makes every applied batch durable, including those Apply left to
// the log (Options.LogDurable).
func (s *Store) Sync() error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if s.noSync {
		return nil
	}
	if err := s.db.Sync(); err != nil {
		return err
	}
	return s.wal.sync()
}

// writeLocked runs a Badger write under applyMu, for writers other than the
// applier. It does not sync: what it writes becomes durable with the next
// applied batch, in log order.
func (s *Store) writeLocked(fn func() error) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	return fn()
}

// Close stops background work and closes Badger. It waits for a running
// compaction to finish its current step.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.trimStop)
		<-s.trimDone
		s.compactor.stop()
		s.wal.close()
		err = s.db.Close()
	})
	return err
}

// Size reports Badger's on-disk size (LSM plus value log) in bytes.
func (s *Store) Size() int64 {
	lsm, vlog := s.db.Size()
	return lsm + vlog
}

// DB exposes Badger for maintenance operations (backup, flatten).
func (s *Store) DB() *badger.DB { return s.db }

type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error(strings.TrimSpace(fmt.Sprintf(f, a...)), "component", "badger")
}
func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn(strings.TrimSpace(fmt.Sprintf(f, a...)), "component", "badger")
}
func (b badgerLogger) Infof(f string, a ...any) {
	b.l.Debug(strings.TrimSpace(fmt.Sprintf(f, a...)), "component", "badger")
}
func (b badgerLogger) Debugf(f string, a ...any) {}

// SyncDisabled reports Options.UnsafeNoSync.
func (s *Store) SyncDisabled() bool { return s.noSync }

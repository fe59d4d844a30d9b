package storage

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/dgraph-io/badger/v4"
	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// The buckets and meta keys of etcd 3.6's backend that an export writes
// besides key, meta and lease (see etcddb.go). An export creates every
// bucket etcd creates, so that etcd and etcdutl find the file as they
// would find one of their own.
var (
	etcdAlarmBucket          = []byte("alarm")
	etcdAuthBucket           = []byte("auth")
	etcdAuthRolesBucket      = []byte("authRoles")
	etcdAuthUsersBucket      = []byte("authUsers")
	etcdClusterBucket        = []byte("cluster")
	etcdMembersBucket        = []byte("members")
	etcdMembersRemovedBucket = []byte("members_removed")

	etcdConfState       = []byte("confState")
	etcdStorageVersionK = []byte("storageVersion")
	etcdClusterVersionK = []byte("clusterVersion")
	etcdAuthRevision    = []byte("authRevision")
)

// etcdStorageVersion is the storage schema version an export declares:
// etcd 3.6's (major.minor.0, as etcd writes it).
const etcdStorageVersion = "3.6.0"

// exportCommitEvery bounds the entries one bbolt transaction holds, and so
// the memory an export needs, whatever the store's size.
const exportCommitEvery = 16384

// ExportOptions are `sett snapshot export`'s.
type ExportOptions struct {
	// Progress, if set, is called every few thousand entries and at the end.
	Progress func(Progress)
	Logger   *slog.Logger
}

// ExportResult describes an exported file.
type ExportResult struct {
	// Revision and CompactRevision are what etcd started on the file
	// reports: the store's.
	Revision, CompactRevision int64
	// Entries counts the revision entries written to etcd's key bucket.
	Entries int64
	Leases  int
	// Size is the file's size, SHA-256 trailer included.
	Size int64
}

// ExportEtcd writes the store as an etcd 3.6 backend file at out, in the
// form `etcdctl snapshot save` writes one: a bbolt database followed by the
// SHA-256 of its bytes, which `etcdutl snapshot restore` verifies. The file
// holds every revision still readable (and, at or below the compaction
// point, exactly what etcd's own compaction keeps: each key's newest change,
// a deletion only at the compaction point itself), with create and mod
// revision, version, lease and value as etcd stores them; the revision and
// compaction point; the leases with their TTLs; the members, cluster
// version and raft applied index and term. Alarms are not written (they
// belong to the members that raised them) nor are auth users and roles.
//
// The file is built under temporary names beside out and renamed onto out
// once complete and synced: on any error out is left as it was.
func (s *Store) ExportEtcd(ctx context.Context, out string, o ExportOptions) (res ExportResult, err error) {
	if o.Logger == nil {
		o.Logger = s.log
	}
	// out is replaced by a rename: never do that to a device or directory.
	if fi, err := os.Lstat(out); err == nil && !fi.Mode().IsRegular() {
		return res, fmt.Errorf("%s exists and is not a regular file", out)
	}
	dir, base := filepath.Split(filepath.Clean(out))
	if dir == "" {
		dir = "."
	}
	boltFile, err := os.CreateTemp(dir, "."+base+".bolt-")
	if err != nil {
		return res, err
	}
	boltPath := boltFile.Name()
	boltFile.Close()
	defer os.Remove(boltPath)
	bdb, err := bolt.Open(boltPath, 0o600, &bolt.Options{
		NoSync: true, NoGrowSync: true, FreelistType: bolt.FreelistMapType,
	})
	if err != nil {
		return res, err
	}
	defer bdb.Close()

	// One Badger read point for the whole key space, so that the file is
	// one consistent revision even while the compactor runs.
	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	rev, compact := s.Rev(), s.CompactRev()
	res.Revision, res.CompactRevision = rev, compact
	if err := bdb.Update(func(tx *bolt.Tx) error { return s.writeEtcdState(tx, compact, &res) }); err != nil {
		return res, err
	}
	if err := writeEtcdKeys(ctx, view{txn}, bdb, rev, compact, o.Progress, &res); err != nil {
		return res, err
	}

	final, err := os.CreateTemp(dir, "."+base+".tmp-")
	if err != nil {
		return res, err
	}
	finalPath := final.Name()
	defer func() {
		if err != nil {
			final.Close()
			os.Remove(finalPath)
		}
	}()
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(final, h), 1<<20)
	err = bdb.View(func(tx *bolt.Tx) error {
		_, err := tx.WriteTo(bw)
		return err
	})
	// The trailer hashes what was written before it: flush first.
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		_, err = final.Write(h.Sum(nil))
	}
	if err == nil {
		err = final.Sync()
	}
	if err != nil {
		return res, err
	}
	fi, err := final.Stat()
	if err != nil {
		return res, err
	}
	res.Size = fi.Size()
	if err = final.Close(); err != nil {
		return res, err
	}
	if err = os.Rename(finalPath, out); err != nil {
		return res, err
	}
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		d.Close()
	}
	return res, nil
}

// etcdMember is a members bucket value, in etcd's JSON.
type etcdMember struct {
	ID         uint64   `json:"id"`
	PeerURLs   []string `json:"peerURLs"`
	Name       string   `json:"name,omitempty"`
	ClientURLs []string `json:"clientURLs,omitempty"`
	IsLearner  bool     `json:"isLearner,omitempty"`
}

// etcdConfStateJSON is raftpb.ConfState as etcd stores it in meta.
type etcdConfStateJSON struct {
	Voters    []uint64 `json:"voters,omitempty"`
	Learners  []uint64 `json:"learners,omitempty"`
	AutoLeave bool     `json:"auto_leave"`
}

// writeEtcdState creates etcd's buckets and writes everything but the key
// bucket's contents.
func (s *Store) writeEtcdState(tx *bolt.Tx, compact int64, res *ExportResult) error {
	buckets := map[string]*bolt.Bucket{}
	for _, name := range [][]byte{etcdKeyBucket, etcdMetaBucket, etcdLeaseBucket, etcdAlarmBucket, etcdClusterBucket,
		etcdMembersBucket, etcdMembersRemovedBucket, etcdAuthBucket, etcdAuthUsersBucket, etcdAuthRolesBucket} {
		b, err := tx.CreateBucket(name)
		if err != nil {
			return err
		}
		buckets[string(name)] = b
	}
	put := func(bucket, k, v []byte) error { return buckets[string(bucket)].Put(k, v) }

	be := func(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
	meta := []struct{ k, v []byte }{
		{etcdConsistentIndex, be(s.AppliedIndex())},
		{etcdTerm, be(max(s.Term(), 1))},
		{etcdStorageVersionK, []byte(etcdStorageVersion)},
	}
	if compact > 0 {
		meta = append(meta,
			struct{ k, v []byte }{etcdFinishedCompact, etcdRevKey(compact, 0, false)},
			struct{ k, v []byte }{etcdScheduledCompact, etcdRevKey(compact, 0, false)})
	}
	members, removed, err := s.Members()
	if err != nil {
		return err
	}
	var cs etcdConfStateJSON
	for _, m := range members {
		v, err := json.Marshal(etcdMember{ID: m.ID, PeerURLs: m.PeerURLs, Name: m.Name, ClientURLs: m.ClientURLs, IsLearner: m.IsLearner})
		if err != nil {
			return err
		}
		if err := put(etcdMembersBucket, []byte(strconv.FormatUint(m.ID, 16)), v); err != nil {
			return err
		}
		if m.IsLearner {
			cs.Learners = append(cs.Learners, m.ID)
		} else {
			cs.Voters = append(cs.Voters, m.ID)
		}
	}
	for _, id := range removed {
		if err := put(etcdMembersRemovedBucket, []byte(strconv.FormatUint(id, 16)), []byte("removed")); err != nil {
			return err
		}
	}
	if len(members) > 0 {
		v, err := json.Marshal(cs)
		if err != nil {
			return err
		}
		meta = append(meta, struct{ k, v []byte }{etcdConfState, v})
	}
	for _, m := range meta {
		if err := put(etcdMetaBucket, m.k, m.v); err != nil {
			return err
		}
	}
	// etcd records the cluster version as major.minor.0.
	cv := s.ClusterVersion()
	switch strings.Count(cv, ".") {
	case 0:
		cv = etcdStorageVersion
	case 1:
		cv += ".0"
	}
	if err := put(etcdClusterBucket, etcdClusterVersionK, []byte(cv)); err != nil {
		return err
	}
	// A fresh etcd auth store starts at auth revision 1.
	if err := put(etcdAuthBucket, etcdAuthRevision, be(1)); err != nil {
		return err
	}
	leases, err := s.LeaseStates()
	if err != nil {
		return err
	}
	for _, l := range leases {
		if err := put(etcdLeaseBucket, be(uint64(l.ID)), encodeEtcdLease(etcdLease{id: l.ID, ttl: l.TTL, remaining: l.Remaining})); err != nil {
			return err
		}
	}
	res.Leases = len(leases)
	return nil
}

// writeEtcdKeys fills etcd's key bucket from the revision tree, in
// revision order, committing every exportCommitEvery entries.
func writeEtcdKeys(ctx context.Context, v view, bdb *bolt.DB, rev, compact int64, progress func(Progress), res *ExportResult) error {
	var p Progress
	if progress != nil {
		n, err := countKeys(v.txn, []byte{tagRevision})
		if err != nil {
			return err
		}
		p.Total = n
	}
	opts := badger.DefaultIteratorOptions
	opts.Prefix = []byte{tagRevision}
	it := v.txn.NewIterator(opts)
	defer it.Close()
	// hist finds, for a change at or below the compaction point, the key's
	// newest change there: the only one etcd's compaction keeps.
	hopts := badger.DefaultIteratorOptions
	hopts.PrefetchValues = false
	hopts.Prefix = []byte{tagHistory}
	hist := v.txn.NewIterator(hopts)
	defer hist.Close()

	type kv struct{ k, v []byte }
	batch := make([]kv, 0, exportCommitEvery)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := bdb.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(etcdKeyBucket)
			// Revisions only grow: pack pages full, as appends leave them.
			b.FillPercent = 1
			for _, e := range batch {
				if err := b.Put(e.k, e.v); err != nil {
					return err
				}
			}
			return nil
		})
		batch = batch[:0]
		return err
	}
	last := int64(0)
	end := revisionKey(rev+1, 0)
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		if bytes.Compare(item.Key(), end) >= 0 {
			break
		}
		main, sub := parseRevisionKey(item.Key())
		p.Entries++
		ev, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		key, rec, err := decodeEvent(ev)
		if err != nil {
			return err
		}
		if main <= compact {
			newest, err := newestAtOrBelow(hist, key, compact)
			if err != nil {
				return err
			}
			if newest != main || (rec.deleted && main != compact) {
				continue
			}
		}
		ek := etcdRevKey(main, sub, rec.deleted)
		m := mvccpb.KeyValue{Key: key}
		if !rec.deleted {
			m = mvccpb.KeyValue{Key: key, CreateRevision: rec.create, ModRevision: rec.mod,
				Version: rec.version, Value: rec.value, Lease: rec.lease}
		}
		ev, err = m.Marshal()
		if err != nil {
			return err
		}
		batch = append(batch, kv{ek, ev})
		last = main
		res.Entries++
		p.Bytes += int64(len(ek) + len(ev))
		if len(batch) == exportCommitEvery {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := flush(); err != nil {
				return err
			}
			if progress != nil {
				progress(p)
			}
		}
	}
	// etcd takes its current revision from the newest entry of the key
	// bucket or its compaction point. A revision above both (a restore
	// with --bump-revision but not --mark-compacted) is kept as etcdutl
	// keeps it: an entry with an empty value at that revision.
	if rev > last && rev > compact {
		batch = append(batch, kv{etcdRevKey(rev, 0, false), []byte{}})
	}
	if err := flush(); err != nil {
		return err
	}
	if progress != nil {
		p.Done = true
		progress(p)
	}
	return nil
}

// newestAtOrBelow is the revision of key's newest change at or below rev,
// from the history index (0: none).
func newestAtOrBelow(hist *badger.Iterator, key []byte, rev int64) (int64, error) {
	prefix := historyPrefix(key)
	hist.Seek(historyKey(key, rev))
	if !hist.ValidForPrefix(prefix) {
		return 0, nil
	}
	_, r, err := parseHistoryKey(hist.Item().Key())
	return r, err
}

// countKeys counts the keys under prefix without reading their values.
func countKeys(txn *badger.Txn, prefix []byte) (int64, error) {
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = prefix
	it := txn.NewIterator(opts)
	defer it.Close()
	var n int64
	for it.Rewind(); it.Valid(); it.Next() {
		n++
	}
	return n, nil
}

// ExportEtcdFromDir exports the stopped sett data directory dir (see
// Store.ExportEtcd).
func ExportEtcdFromDir(ctx context.Context, dir, out string, o ExportOptions) (ExportResult, error) {
	if _, err := os.Stat(filepath.Join(dir, "MANIFEST")); err != nil {
		return ExportResult{}, fmt.Errorf("%s is not a sett data directory: %w", dir, err)
	}
	opts := DefaultOptions(dir)
	opts.Logger = o.Logger
	opts.ResidencyTrimInterval = -1
	s, err := Open(opts)
	if err != nil {
		return ExportResult{}, err
	}
	defer s.Close()
	return s.ExportEtcd(ctx, out, o)
}

// ExportEtcdFromSnapshot exports a sett snapshot file (`etcdctl snapshot
// save` against sett): it is restored into a temporary directory beside
// out, checked as `sett snapshot restore` checks it, and exported from
// there.
func ExportEtcdFromSnapshot(ctx context.Context, file, out string, skipHash bool, o ExportOptions) (ExportResult, error) {
	dir, base := filepath.Split(filepath.Clean(out))
	if dir == "" {
		dir = "."
	}
	tmp, err := os.MkdirTemp(dir, "."+base+".restore-")
	if err != nil {
		return ExportResult{}, err
	}
	defer os.RemoveAll(tmp)
	data := filepath.Join(tmp, "data")
	if _, err := RestoreSnapshot(file, data, RestoreOptions{SkipHashCheck: skipHash, Logger: o.Logger}); err != nil {
		return ExportResult{}, err
	}
	return ExportEtcdFromDir(ctx, data, out, o)
}

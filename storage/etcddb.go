package storage

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// etcd's backend (bbolt) schema, as etcd 3.4–3.6 write it:
//
//	bucket "key":   revision key -> mvccpb.KeyValue (marshalled)
//	                revision key = main(8, big-endian) '_' sub(8, big-endian)
//	                [+ 't' for a deletion, whose value holds only the key]
//	bucket "meta":  "finishedCompactRev", "scheduledCompactRev" -> revision
//	                key (17 bytes, sub 0); "consistent_index", "term" -> 8 bytes
//	bucket "lease": lease ID (8, big-endian) -> leasepb.Lease
//	                (1: ID, 2: TTL, 3: RemainingTTL; protobuf varints)
//
// Other buckets (members, members_removed, cluster, alarm, auth*) belong to
// the old cluster or to auth and are not read by an import.
var (
	etcdKeyBucket   = []byte("key")
	etcdMetaBucket  = []byte("meta")
	etcdLeaseBucket = []byte("lease")

	etcdFinishedCompact  = []byte("finishedCompactRev")
	etcdScheduledCompact = []byte("scheduledCompactRev")
	etcdConsistentIndex  = []byte("consistent_index")
	etcdTerm             = []byte("term")
)

// etcdRevKeyLen is the length of an etcd revision key without its tombstone
// mark.
const etcdRevKeyLen = 17

// bboltMagic is bbolt's meta page magic number, in the little-endian order
// it has on disk, at offset 16 of the file (after the page header).
const bboltMagic = "\xed\xda\x0c\xed"

// ErrBadEtcdDB reports an etcd snapshot or db file that cannot be imported.
var ErrBadEtcdDB = errors.New("not a valid etcd snapshot")

// IsEtcdDB tells whether path starts like a bbolt file (etcd's backend).
func IsEtcdDB(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	var hdr [20]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil {
		return false, nil
	}
	return string(hdr[16:20]) == bboltMagic, nil
}

// etcdRevKey encodes an etcd revision key.
func etcdRevKey(rev, sub int64, tombstone bool) []byte {
	b := make([]byte, etcdRevKeyLen, etcdRevKeyLen+1)
	binary.BigEndian.PutUint64(b, uint64(rev))
	b[8] = '_'
	binary.BigEndian.PutUint64(b[9:], uint64(sub))
	if tombstone {
		b = append(b, 't')
	}
	return b
}

// parseEtcdRevKey decodes an etcd revision key.
func parseEtcdRevKey(k []byte) (rev, sub int64, tombstone bool, err error) {
	switch {
	case len(k) == etcdRevKeyLen:
	case len(k) == etcdRevKeyLen+1 && k[etcdRevKeyLen] == 't':
		tombstone = true
	default:
		return 0, 0, false, fmt.Errorf("%w: bad revision key %x", ErrBadEtcdDB, k)
	}
	if k[8] != '_' {
		return 0, 0, false, fmt.Errorf("%w: bad revision key %x", ErrBadEtcdDB, k)
	}
	return int64(binary.BigEndian.Uint64(k)), int64(binary.BigEndian.Uint64(k[9:])), tombstone, nil
}

// etcdLease is a decoded leasepb.Lease.
type etcdLease struct{ id, ttl, remaining int64 }

// decodeEtcdLease reads leasepb.Lease's three varint fields, skipping any
// field it does not know.
func decodeEtcdLease(b []byte) (etcdLease, error) {
	var l etcdLease
	for len(b) > 0 {
		tag, n := binary.Uvarint(b)
		if n <= 0 {
			return l, errCorrupt
		}
		b = b[n:]
		field, wire := tag>>3, tag&7
		switch wire {
		case 0:
			v, n := binary.Uvarint(b)
			if n <= 0 {
				return l, errCorrupt
			}
			b = b[n:]
			switch field {
			case 1:
				l.id = int64(v)
			case 2:
				l.ttl = int64(v)
			case 3:
				l.remaining = int64(v)
			}
		case 2:
			v, n := binary.Uvarint(b)
			if n <= 0 || uint64(len(b)-n) < v {
				return l, errCorrupt
			}
			b = b[n+int(v):]
		case 1:
			if len(b) < 8 {
				return l, errCorrupt
			}
			b = b[8:]
		case 5:
			if len(b) < 4 {
				return l, errCorrupt
			}
			b = b[4:]
		default:
			return l, errCorrupt
		}
	}
	return l, nil
}

// encodeEtcdLease writes leasepb.Lease as etcd marshals it (zero fields
// omitted).
func encodeEtcdLease(l etcdLease) []byte {
	var b []byte
	for i, v := range []int64{l.id, l.ttl, l.remaining} {
		if v != 0 {
			b = binary.AppendUvarint(b, uint64(i+1)<<3)
			b = binary.AppendUvarint(b, uint64(v))
		}
	}
	return b
}

// openEtcdDB checks path (an `etcdctl snapshot save` file with its SHA-256
// trailer, or with skipHash any bbolt file such as member/snap/db), copies
// its bbolt part to a file in tmpDir and opens that read-only. bbolt is not
// handed the original: a snapshot's trailer is not part of the database,
// and a damaged file must not be written to.
func openEtcdDB(path, tmpDir string, skipHash bool) (*bolt.DB, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	body := fi.Size()
	hasHash := body%SnapshotBlock == sha256.Size
	if hasHash {
		body -= sha256.Size
	} else if !skipHash {
		return nil, 0, fmt.Errorf("%w: %s has no SHA-256 trailer (%d bytes; truncated, or a data dir's member/snap/db); use --skip-hash-check to restore it anyway", ErrBadEtcdDB, path, fi.Size())
	}
	copyPath := filepath.Join(tmpDir, "etcd.db")
	out, err := os.OpenFile(copyPath, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, 0, err
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(out, h), io.NewSectionReader(f, 0, body))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, 0, err
	}
	if hasHash && !skipHash {
		want := make([]byte, sha256.Size)
		if _, err := f.ReadAt(want, body); err != nil {
			return nil, 0, err
		}
		if !bytes.Equal(h.Sum(nil), want) {
			return nil, 0, fmt.Errorf("%w: SHA-256 mismatch (the file is damaged or truncated)", ErrBadEtcdDB)
		}
	}
	db, err := bolt.Open(copyPath, 0o400, &bolt.Options{ReadOnly: true})
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrBadEtcdDB, err)
	}
	return db, body, nil
}

// etcdMeta is what an import reads from etcd's meta bucket.
type etcdMeta struct {
	finished, scheduled int64 // compaction points; -1: none
	consistentIndex     uint64
}

func readEtcdMeta(tx *bolt.Tx) (etcdMeta, error) {
	m := etcdMeta{finished: -1, scheduled: -1}
	b := tx.Bucket(etcdMetaBucket)
	if b == nil {
		return m, fmt.Errorf("%w: no meta bucket", ErrBadEtcdDB)
	}
	for _, p := range []struct {
		key []byte
		dst *int64
	}{{etcdFinishedCompact, &m.finished}, {etcdScheduledCompact, &m.scheduled}} {
		if v := b.Get(p.key); v != nil {
			rev, _, _, err := parseEtcdRevKey(v)
			if err != nil {
				return m, err
			}
			*p.dst = rev
		}
	}
	if v := b.Get(etcdConsistentIndex); len(v) == 8 {
		m.consistentIndex = binary.BigEndian.Uint64(v)
	}
	return m, nil
}

// decodeEtcdKV decodes one entry of etcd's key bucket.
func decodeEtcdKV(k, v []byte) (rev, sub int64, kv mvccpb.KeyValue, tombstone bool, err error) {
	rev, sub, tombstone, err = parseEtcdRevKey(k)
	if err != nil {
		return
	}
	if err = kv.Unmarshal(v); err != nil {
		err = fmt.Errorf("%w: revision %d: %v", ErrBadEtcdDB, rev, err)
	}
	return
}

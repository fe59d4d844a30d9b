package storage

import (
	"encoding/binary"
	"errors"
	"math"

	"github.com/dgraph-io/badger/v4"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Tree tags: the first byte of every Badger key (see doc.go).
const (
	tagCurrent  = 'c'
	tagRevision = 'r'
	tagHistory  = 'h'
	tagLease    = 'l'
	tagAttached = 'a'
	tagMeta     = 'm'
)

var (
	metaRevision = []byte("m/revision")
	metaCompact  = []byte("m/compact")
	metaApplied  = []byte("m/applied")
	metaTerm     = []byte("m/term")
	metaConsist  = []byte("m/consistent-index-term")
)

var errCorrupt = errors.New("storage: corrupt record")

// metaTombstone marks a current-tree tombstone in Badger's per-key user
// meta byte, so that keys can be counted without reading their records.
const metaTombstone byte = 1

// currentEntry is key's current-tree entry for rec.
func currentEntry(key []byte, rec *record) *badger.Entry {
	e := badger.NewEntry(currentKey(key), rec.encode())
	if rec.deleted {
		e = e.WithMeta(metaTombstone)
	}
	return e
}

func currentKey(key []byte) []byte {
	b := make([]byte, 1+len(key))
	b[0] = tagCurrent
	copy(b[1:], key)
	return b
}

func revisionKey(rev, sub int64) []byte {
	b := make([]byte, 17)
	b[0] = tagRevision
	binary.BigEndian.PutUint64(b[1:], uint64(rev))
	binary.BigEndian.PutUint64(b[9:], uint64(sub))
	return b
}

func parseRevisionKey(b []byte) (rev, sub int64) {
	return int64(binary.BigEndian.Uint64(b[1:9])), int64(binary.BigEndian.Uint64(b[9:17]))
}

// historyPrefix is 'h' + uvarint(len(key)) + key: the length prefix keeps one
// key's entries contiguous and distinct from every longer key's.
func historyPrefix(key []byte) []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(key)+8)
	b = append(b, tagHistory)
	b = binary.AppendUvarint(b, uint64(len(key)))
	return append(b, key...)
}

// historyKey orders a key's revisions newest first (inverted big-endian).
func historyKey(key []byte, rev int64) []byte {
	return binary.BigEndian.AppendUint64(historyPrefix(key), math.MaxUint64-uint64(rev))
}

func parseHistoryKey(b []byte) (key []byte, rev int64, err error) {
	n, w := binary.Uvarint(b[1:])
	if w <= 0 || len(b) != 1+w+int(n)+8 {
		return nil, 0, errCorrupt
	}
	key = b[1+w : 1+w+int(n)]
	rev = int64(math.MaxUint64 - binary.BigEndian.Uint64(b[len(b)-8:]))
	return key, rev, nil
}

func leaseKey(id int64) []byte {
	return binary.BigEndian.AppendUint64([]byte{tagLease}, uint64(id))
}

func attachedPrefix(id int64) []byte {
	return binary.BigEndian.AppendUint64([]byte{tagAttached}, uint64(id))
}

func attachedKey(id int64, key []byte) []byte {
	return append(attachedPrefix(id), key...)
}

// record is one version of a key as stored: a live value or a tombstone.
type record struct {
	deleted bool
	create  int64
	mod     int64
	version int64
	lease   int64
	value   []byte
}

func (r *record) encode() []byte {
	b := make([]byte, 0, 1+4*binary.MaxVarintLen64+len(r.value))
	var flags byte
	if r.deleted {
		flags = 1
	}
	b = append(b, flags)
	b = binary.AppendVarint(b, r.create)
	b = binary.AppendVarint(b, r.mod)
	b = binary.AppendVarint(b, r.version)
	b = binary.AppendVarint(b, r.lease)
	return append(b, r.value...)
}

// decodeRecord aliases b for the value; callers copy b if it outlives the
// Badger transaction.
func decodeRecord(b []byte) (record, error) {
	var r record
	if len(b) < 1 {
		return r, errCorrupt
	}
	r.deleted = b[0]&1 != 0
	b = b[1:]
	for _, p := range []*int64{&r.create, &r.mod, &r.version, &r.lease} {
		v, n := binary.Varint(b)
		if n <= 0 {
			return r, errCorrupt
		}
		*p = v
		b = b[n:]
	}
	r.value = b
	return r, nil
}

func (r *record) keyValue(key []byte) *mvccpb.KeyValue {
	return &mvccpb.KeyValue{
		Key:            key,
		CreateRevision: r.create,
		ModRevision:    r.mod,
		Version:        r.version,
		Lease:          r.lease,
		Value:          r.value,
	}
}

// encodeEvent is the revision tree's value: the key, then its record.
func encodeEvent(key []byte, r *record) []byte {
	rb := r.encode()
	b := make([]byte, 0, binary.MaxVarintLen64+len(key)+len(rb))
	b = binary.AppendUvarint(b, uint64(len(key)))
	b = append(b, key...)
	return append(b, rb...)
}

func decodeEvent(b []byte) (key []byte, r record, err error) {
	n, w := binary.Uvarint(b)
	if w <= 0 || len(b) < w+int(n) {
		return nil, r, errCorrupt
	}
	key = b[w : w+int(n)]
	r, err = decodeRecord(b[w+int(n):])
	return key, r, err
}

func encodeInt(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }

func decodeInt(b []byte) (int64, error) {
	if len(b) != 8 {
		return 0, errCorrupt
	}
	return int64(binary.BigEndian.Uint64(b)), nil
}

// prefixEnd is the smallest key greater than every key with prefix p, or nil
// when there is none (p is all 0xff).
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

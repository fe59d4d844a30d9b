package raftlog

import (
	"encoding/binary"
	"hash/crc32"
	"slices"
)

// Record layout (little endian):
//
//	[0:4] n   = length of the body (type byte + payload), always >= 1
//	[4:8] crc = crc32c over bytes [0:4] followed by the body
//	[8:8+n]   body: one type byte, then the payload
//
// Eight zero bytes where a header is expected mark the end of a segment's
// data: a body is never empty, so no record starts with a zero length.
const headerSize = 8

// Record types. A segment's first record is always recSegment.
const (
	recSegment   byte = 1 // payload: seq uint64, first index uint64
	recEntry     byte = 2 // payload: raftpb.Entry
	recHardState byte = 3 // payload: raftpb.HardState
	recSnapshot  byte = 4 // payload: raftpb.SnapshotMetadata
)

// castagnoli is the read-only CRC table shared by all logs.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// marshaler is what the gogoproto raftpb types provide.
type marshaler interface {
	Size() int
	MarshalTo([]byte) (int, error)
}

// appendRecord appends one record holding m to buf.
func appendRecord(buf []byte, typ byte, m marshaler) ([]byte, error) {
	n := 1 + m.Size()
	start := len(buf)
	buf = slices.Grow(buf, headerSize+n)[:start+headerSize+n]
	body := buf[start+headerSize:]
	body[0] = typ
	if _, err := m.MarshalTo(body[1:]); err != nil {
		return buf[:start], err
	}
	sealRecord(buf[start:])
	return buf, nil
}

// segmentRecordSize is the encoded size of a segment record.
const segmentRecordSize = headerSize + 1 + 16

// appendSegmentRecord appends the record that opens segment seq.
func appendSegmentRecord(buf []byte, seq, firstIndex uint64) []byte {
	start := len(buf)
	const n = 1 + 16
	buf = slices.Grow(buf, headerSize+n)[:start+headerSize+n]
	body := buf[start+headerSize:]
	body[0] = recSegment
	binary.LittleEndian.PutUint64(body[1:], seq)
	binary.LittleEndian.PutUint64(body[9:], firstIndex)
	sealRecord(buf[start:])
	return buf
}

// sealRecord fills in the header of rec, whose body is rec[headerSize:].
func sealRecord(rec []byte) {
	binary.LittleEndian.PutUint32(rec[0:4], uint32(len(rec)-headerSize))
	binary.LittleEndian.PutUint32(rec[4:8], recordCRC(rec[0:4], rec[headerSize:]))
}

func recordCRC(length, body []byte) uint32 {
	return crc32.Update(crc32.Update(0, castagnoli, length), castagnoli, body)
}

func decodeSegmentRecord(payload []byte) (seq, firstIndex uint64, ok bool) {
	if len(payload) != 16 {
		return 0, 0, false
	}
	return binary.LittleEndian.Uint64(payload), binary.LittleEndian.Uint64(payload[8:]), true
}

package raftlog

import (
	"encoding/binary"
	"fmt"
)

// sectorSize is the unit a disk is assumed to persist atomically. A torn
// write leaves whole sectors of the unsynced tail as they were before the
// write: zero, since segments are preallocated with zeros and never reused.
const sectorSize = 512

// badRecord says where and why a segment's records stop before a clean end.
type badRecord struct {
	off     int    // start of the bad record
	end     int    // where the record claims to end; meaningless if pastEOF
	pastEOF bool   // the header or body runs past the end of the file
	reason  string // for error messages
}

func (b *badRecord) String() string {
	return fmt.Sprintf("%s at offset %d", b.reason, b.off)
}

// scanSegment calls visit for each intact record of data in order and
// returns the offset just after the last one. A clean end is the end of the
// file or an end marker followed only by zeros; otherwise bad describes the
// first record that is not intact. An error from visit is returned as is.
func scanSegment(data []byte, visit func(typ byte, payload []byte) error) (end int, bad *badRecord, err error) {
	off := 0
	for {
		rest := data[off:]
		if len(rest) == 0 {
			return off, nil, nil
		}
		if len(rest) < headerSize {
			if allZero(rest) {
				return off, nil, nil
			}
			return off, &badRecord{off: off, pastEOF: true, reason: "partial record header"}, nil
		}
		n := binary.LittleEndian.Uint32(rest[0:4])
		crc := binary.LittleEndian.Uint32(rest[4:8])
		switch {
		case n == 0 && crc == 0:
			if allZero(rest) {
				return off, nil, nil
			}
			return off, &badRecord{off: off, end: off + headerSize, reason: "data after end marker"}, nil
		case n == 0:
			return off, &badRecord{off: off, end: off + headerSize, reason: "empty record"}, nil
		case uint64(n) > uint64(len(rest)-headerSize):
			return off, &badRecord{off: off, pastEOF: true, reason: "record runs past end of file"}, nil
		}
		body := rest[headerSize : headerSize+int(n)]
		if recordCRC(rest[0:4], body) != crc {
			return off, &badRecord{off: off, end: off + headerSize + int(n), reason: "crc mismatch"}, nil
		}
		if err := visit(body[0], body[1:]); err != nil {
			return off, nil, fmt.Errorf("record at offset %d: %w", off, err)
		}
		off += headerSize + int(n)
	}
}

// isTornTail reports whether bad, found in the last segment, is what a crash
// during an unsynced write leaves behind: a record cut off by the end of the
// file, a record followed only by zeros (a prefix of the write persisted), or
// a record with a zero-filled stretch that reaches the end of a sector (a
// sector of the write was not persisted). Anything else is corruption.
//
// strictEOF says the file is preallocated and bad follows an entry in it:
// then no write can have gone past the end of the file (only the first write
// after a segment's header can outgrow it), so a record running past it has
// a damaged length.
func isTornTail(data []byte, bad *badRecord, strictEOF bool) bool {
	if bad.pastEOF {
		return !strictEOF
	}
	if allZero(data[bad.end:]) {
		return true
	}
	for lo := bad.off; lo < bad.end; {
		hi := min((lo/sectorSize+1)*sectorSize, len(data))
		if allZero(data[lo:hi]) {
			return true
		}
		lo = hi
	}
	return false
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

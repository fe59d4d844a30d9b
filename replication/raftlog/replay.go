package raftlog

import (
	"fmt"

	"go.etcd.io/raft/v3/raftpb"
)

// replay rebuilds a log's State from its records, oldest first.
//
// Invariant: ents is contiguous. An entry with index i <= the last index
// replaces the entries from i on (raft overwrote an uncommitted suffix). An
// entry after a gap starts ents afresh: the gap must be covered by a later
// snapshot record, which finish checks.
type replay struct {
	hs   raftpb.HardState
	snap raftpb.SnapshotMetadata
	ents []raftpb.Entry
}

// record applies one record of seg (first: it is the segment's first
// record) and keeps seg.maxIndex up to date.
func (r *replay) record(seg *segment, first bool, typ byte, payload []byte) error {
	if first != (typ == recSegment) {
		return fmt.Errorf("segment record expected first and only first, got type %d", typ)
	}
	switch typ {
	case recSegment:
		seq, _, ok := decodeSegmentRecord(payload)
		if !ok || seq != seg.seq {
			return fmt.Errorf("segment record does not match file sequence %d", seg.seq)
		}
	case recEntry:
		var e raftpb.Entry
		if err := e.Unmarshal(payload); err != nil {
			return fmt.Errorf("entry: %w", err)
		}
		r.appendEntry(e)
		seg.maxIndex = max(seg.maxIndex, e.Index)
	case recHardState:
		var hs raftpb.HardState
		if err := hs.Unmarshal(payload); err != nil {
			return fmt.Errorf("hard state: %w", err)
		}
		r.hs = hs
	case recSnapshot:
		var m raftpb.SnapshotMetadata
		if err := m.Unmarshal(payload); err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
		r.snap = m
		r.dropThrough(m.Index)
	default:
		return fmt.Errorf("unknown record type %d", typ)
	}
	return nil
}

func (r *replay) appendEntry(e raftpb.Entry) {
	if n := len(r.ents); n > 0 {
		first, last := r.ents[0].Index, r.ents[n-1].Index
		switch {
		case e.Index < first || e.Index > last+1:
			r.ents = r.ents[:0]
		case e.Index <= last:
			clear(r.ents[e.Index-first:])
			r.ents = r.ents[:e.Index-first]
		}
	}
	r.ents = append(r.ents, e)
}

// dropThrough removes the entries with index <= index.
func (r *replay) dropThrough(index uint64) {
	i := 0
	for i < len(r.ents) && r.ents[i].Index <= index {
		i++
	}
	r.ents = r.ents[i:]
}

// finish checks that the entries continue the snapshot and returns them.
func (r *replay) finish() ([]raftpb.Entry, error) {
	if len(r.ents) > 0 && r.ents[0].Index != r.snap.Index+1 {
		return nil, fmt.Errorf("%w: entries start at %d but the snapshot is at %d",
			ErrCorrupt, r.ents[0].Index, r.snap.Index)
	}
	return r.ents, nil
}

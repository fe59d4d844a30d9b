package raftlog

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

const (
	segmentExt = ".wal"
	tmpExt     = ".tmp"
)

// segment describes one segment file of an open log.
type segment struct {
	seq        uint64 // consecutive, starting at 0
	firstIndex uint64 // index the first entry appended to it was expected to have (from its name)
	// maxIndex is the highest entry index ever written to the segment (0 if
	// none). ReleaseTo deletes a segment only when maxIndex allows it.
	maxIndex uint64
}

// name sorts in sequence order: both fields are fixed-width hex.
func (s segment) name() string {
	return fmt.Sprintf("%016x-%016x%s", s.seq, s.firstIndex, segmentExt)
}

func parseSegmentName(name string) (segment, bool) {
	var s segment
	if !strings.HasSuffix(name, segmentExt) || len(name) != 33+len(segmentExt) {
		return s, false
	}
	if _, err := fmt.Sscanf(name, "%016x-%016x"+segmentExt, &s.seq, &s.firstIndex); err != nil {
		return s, false
	}
	return s, s.name() == name
}

// listSegments returns dir's segments in sequence order after removing the
// leftovers of interrupted segment creations (*.tmp). Sequence numbers must
// be consecutive: a gap means a lost file.
func listSegments(dir string) ([]segment, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var segs []segment
	removed := false
	for _, de := range des {
		name := de.Name()
		if strings.HasSuffix(name, tmpExt) {
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return nil, err
			}
			removed = true
			continue
		}
		if s, ok := parseSegmentName(name); ok {
			segs = append(segs, s)
		}
	}
	if removed {
		if err := syncDir(dir); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(segs, func(a, b segment) int {
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return 0
	})
	if len(segs) == 0 {
		return nil, fmt.Errorf("%w: no segment in %s", ErrCorrupt, dir)
	}
	for i := 1; i < len(segs); i++ {
		if segs[i].seq != segs[i-1].seq+1 {
			return nil, fmt.Errorf("%w: segment %d missing in %s", ErrCorrupt, segs[i-1].seq+1, dir)
		}
	}
	return segs, nil
}

// createSegment makes segment s in dir holding header (already encoded
// records), preallocated to size bytes. The file appears under its final
// name only once complete and (unless noSync) durable; the caller syncs dir.
func createSegment(dir string, s segment, header []byte, size int64, noSync bool) (*os.File, error) {
	final := filepath.Join(dir, s.name())
	tmp := final + tmpExt
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*os.File, error) {
		f.Close()
		os.Remove(tmp)
		return nil, err
	}
	if err := preallocate(f, size); err != nil {
		return fail(err)
	}
	if _, err := f.WriteAt(header, 0); err != nil {
		return fail(err)
	}
	if !noSync {
		if err := f.Sync(); err != nil {
			return fail(err)
		}
	}
	if err := os.Rename(tmp, final); err != nil {
		return fail(err)
	}
	return f, nil
}

// extend grows f to size bytes if it is smaller.
func extend(f *os.File, size int64) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() >= size {
		return nil
	}
	return f.Truncate(size)
}

// syncDir makes creations, renames and removals in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// walSyncer makes Badger's memtable write-ahead log durable by fdatasync on
// the log file itself. Badger's own Sync also syncs the value log, an extra
// device flush per commit that is wasted unless a value went there (the
// applier then calls db.Sync instead). Badger writes the log through a
// shared mapping, and fdatasync on the file writes back every page dirtied
// through it. Memtable logs are named %05d.mem with increasing IDs; callers
// hold applyMu, so no other write rotates the log while it is synced.
type walSyncer struct {
	dir string
	fid int64
	f   *os.File
}

func newWALSyncer(dir string) (*walSyncer, error) {
	w := &walSyncer{dir: dir, fid: -1}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if id, ok := memFileID(e.Name()); ok && id > w.fid {
			w.fid = id
		}
	}
	if w.fid >= 0 {
		if w.f, err = os.OpenFile(w.path(w.fid), os.O_RDWR, 0); err != nil {
			return nil, err
		}
	}
	return w, nil
}

func memFileID(name string) (int64, bool) {
	if !strings.HasSuffix(name, ".mem") {
		return 0, false
	}
	id, err := strconv.ParseInt(strings.TrimSuffix(name, ".mem"), 10, 64)
	return id, err == nil
}

func (w *walSyncer) path(fid int64) string {
	return filepath.Join(w.dir, fmt.Sprintf("%05d.mem", fid))
}

// sync follows the log to its newest file, syncing each older one it
// leaves (it may hold writes since the last sync), then syncs the newest.
func (w *walSyncer) sync() error {
	for {
		nf, err := os.OpenFile(w.path(w.fid+1), os.O_RDWR, 0)
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			return err
		}
		if w.f != nil {
			if err := datasync(w.f); err != nil {
				nf.Close()
				return err
			}
			w.f.Close()
		}
		w.f, w.fid = nf, w.fid+1
	}
	if w.f == nil {
		return errors.New("storage: no memtable log to sync")
	}
	return datasync(w.f)
}

func (w *walSyncer) close() {
	if w.f != nil {
		w.f.Close()
	}
}

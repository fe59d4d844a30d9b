//go:build !linux

package raftlog

import "os"

// fdatasync flushes f; without fdatasync this is a full fsync.
func fdatasync(f *os.File) error { return f.Sync() }

// preallocate extends f to size bytes (sparse where fallocate is missing).
func preallocate(f *os.File, size int64) error { return extend(f, size) }

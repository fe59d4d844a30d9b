package storage

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// trimTableResidency drops this process's resident pages of the Badger
// table files under dir. Badger maps each table (MAP_SHARED) and reads it
// through the mapping, so every page a compaction or a scan ever touched
// would count in sett's RSS. After MADV_DONTNEED the kernel still holds the
// pages in its page cache (reclaimable), and the next access maps them
// again with a minor fault, re-read from the up-to-date file contents, as
// madvise(2) guarantees for shared file mappings: nothing is lost or
// altered, even for a table still being written.
func trimTableResidency(dir string) (trimmed int64, err error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return 0, err
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode path
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || !strings.HasSuffix(fields[5], ".sst") || filepath.Dir(fields[5]) != abs {
			continue
		}
		if !strings.HasSuffix(fields[1], "s") {
			continue // only shared mappings re-read the file
		}
		bounds := strings.SplitN(fields[0], "-", 2)
		start, err1 := strconv.ParseUint(bounds[0], 16, 64)
		end, err2 := strconv.ParseUint(bounds[1], 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, uintptr(start), uintptr(end-start), syscall.MADV_DONTNEED); errno != 0 {
			return trimmed, errno
		}
		trimmed += int64(end - start)
	}
	return trimmed, sc.Err()
}

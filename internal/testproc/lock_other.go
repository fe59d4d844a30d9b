//go:build !unix

package testproc

import "sync"

// Without flock, locks only exclude other callers in this process.

var (
	fileLocksMu sync.Mutex
	fileLocks   = map[string]*sync.Mutex{}
	heldLocks   = map[string]bool{}
)

func lockFile(path string) (unlock func(), err error) {
	fileLocksMu.Lock()
	mu := fileLocks[path]
	if mu == nil {
		mu = new(sync.Mutex)
		fileLocks[path] = mu
	}
	fileLocksMu.Unlock()
	mu.Lock()
	return mu.Unlock, nil
}

func tryLockFile(path string) (unlock func(), ok bool) {
	fileLocksMu.Lock()
	defer fileLocksMu.Unlock()
	if heldLocks[path] {
		return nil, false
	}
	heldLocks[path] = true
	return func() {
		fileLocksMu.Lock()
		delete(heldLocks, path)
		fileLocksMu.Unlock()
	}, true
}

package testproc

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

// ModulePath is the module path of the repository root go.mod.
const ModulePath = "github.com/sett-dev/sett"

var (
	repoRootOnce sync.Once
	repoRoot     string
	repoRootErr  error
)

// RepoRoot returns the absolute path of the repository root: the nearest
// directory, walking up from the current test's package directory (or, failing
// that, from this source file), whose go.mod declares module ModulePath.
// It panics if no such directory exists, which only happens when the package
// is used outside the repository.
func RepoRoot() string {
	repoRootOnce.Do(func() {
		repoRoot, repoRootErr = findRepoRoot()
	})
	if repoRootErr != nil {
		panic("testproc: " + repoRootErr.Error())
	}
	return repoRoot
}

func findRepoRoot() (string, error) {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		starts = append(starts, filepath.Dir(file))
	}
	for _, start := range starts {
		for dir := start; ; {
			if modulePathOf(filepath.Join(dir, "go.mod")) == ModulePath {
				return dir, nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", fmt.Errorf("no go.mod with module %s above %s", ModulePath, strings.Join(starts, " or "))
}

// modulePathOf returns the module path declared by the go.mod file at path,
// or "" if it cannot be read or declares none.
func modulePathOf(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, "//"); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		rest, ok := strings.CutPrefix(line, "module")
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '\t' && rest[0] != '"') {
			continue
		}
		return strings.Trim(strings.TrimSpace(rest), `"`)
	}
	return ""
}

package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// hollowKubeletRoot is the directory a hollow kubelet makes in /tmp
// whatever TMPDIR says, and names in its log.
var hollowKubeletRoot = regexp.MustCompile(`/tmp/hollow-kubelet\.\d+`)

// removeHollowKubeletFiles removes the directories a stopped hollow
// kubelet named in its log.
func removeHollowKubeletFiles(log string) {
	for _, path := range hollowKubeletRoot.FindAllString(log, -1) {
		os.RemoveAll(path)
	}
}

// fakeRuntimeSockets lists the sockets hollow kubelets' fake runtimes
// create in /tmp and leave there: nothing logs their names.
func fakeRuntimeSockets() map[string]bool {
	paths, _ := filepath.Glob("/tmp/kubelet_remote_*.sock")
	set := map[string]bool{}
	for _, p := range paths {
		set[p] = true
	}
	return set
}

// removeFakeRuntimeSockets removes the fake runtime sockets that appeared
// since before and that no process holds open any more.
func removeFakeRuntimeSockets(before map[string]bool) {
	table, _ := os.ReadFile("/proc/net/unix")
	for path := range fakeRuntimeSockets() {
		if !before[path] && !strings.Contains(string(table), path) {
			os.Remove(path)
		}
	}
}

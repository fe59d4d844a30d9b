package kinde2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// capNames are Linux capability numbers as Docker names them.
var capNames = []string{
	"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
	"SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
	"IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
	"SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
	"LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
	"WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ",
}

// missingCapabilities lists the capabilities (of those Docker knows) absent
// from this process's bounding set: no container on this host can hold them.
func missingCapabilities() ([]string, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "CapBnd:")
		if !ok {
			continue
		}
		bnd, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			return nil, err
		}
		var missing []string
		for i, name := range capNames {
			if bnd&(1<<i) == 0 {
				missing = append(missing, name)
			}
		}
		return missing, nil
	}
	return nil, fmt.Errorf("no CapBnd in /proc/self/status")
}

// privilegedWorks reports whether `docker run --privileged` can start image.
func privilegedWorks(ctx context.Context, image string) (bool, string) {
	out, err := exec.CommandContext(ctx, "docker", "run", "--rm", "--privileged", image, "true").CombinedOutput()
	return err == nil, strings.TrimSpace(string(out))
}

// installDockerShim makes kind's `docker run --privileged` work on a host
// whose capability bounding set lacks some capability. Docker 20.10 asks the
// runtime for every capability it knows when a container is privileged, and
// runc fails ("unable to apply caps: operation not permitted") if one of them
// is outside the bounding set. kind always runs its nodes privileged.
//
// The shim, a `docker` first on PATH for this test process only, replaces
// --privileged in `docker run` with what the node needs of it (and drops it
// from `docker exec`, whose processes then get the node's own privileges): every
// capability the host has, no seccomp/AppArmor/masked paths (kind already
// passes the first two), access to every device, /dev/kmsg for the kubelet.
// Docker then mounts the cgroup hierarchies read-only; the node image's
// sett-node-init remounts them writable before kind's entrypoint runs.
// Nothing else of the host or the Docker daemon changes.
func installDockerShim(t *testing.T, missing []string) {
	t.Helper()
	real, err := exec.LookPath("docker")
	if err != nil {
		t.Fatal(err)
	}
	var repl []string
	repl = append(repl, "--cap-add=ALL")
	for _, c := range missing {
		repl = append(repl, "--cap-drop="+c)
	}
	repl = append(repl, "--security-opt=systempaths=unconfined", "\"--device-cgroup-rule=a *:* rwm\"", "--device=/dev/kmsg")
	script := fmt.Sprintf(`#!/bin/sh
# Written by e2e/kind (dockershim_test.go) for one test run: docker run
# --privileged becomes the privileges this host can grant.
case "${1:-}" in
run) repl='%s' ;;
exec) repl= ;; # the node already holds what the host can grant
*) exec %q "$@" ;;
esac
for a in "$@"; do
  shift
  if [ "$a" = --privileged ]; then
    eval "set -- \"\$@\" $repl"
  else
    set -- "$@" "$a"
  fi
done
exec %q "$@"
`, strings.Join(repl, " "), real, real)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "docker"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Logf("docker shim: --privileged -> %s", strings.Join(repl, " "))
}

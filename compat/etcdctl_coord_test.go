package compat

import (
	"testing"
	"time"
)

// electScript: an observer, a leader, a waiting candidate, the leader
// resigning on Ctrl-C and the candidate taking over.
var electScript = []coStep{
	coRun("elect"),                  // client error: no name
	coRun("elect", "e1"),            // client error: no proposal, no -l
	coRun("elect", "-l", "e1", "p"), // client error: both
	coStart("obs1", "elect", "-l", "e1"),
	coSleep(500 * time.Millisecond),
	coSoFar("obs1"), // no leader yet: nothing
	coStart("A", "elect", "e1", "pA"),
	coWait("A", `e1/[0-9a-f]+\npA\n`),
	coWait("obs1", `pA\n`),
	coStart("B", "elect", "e1", "pB"),
	coSleep(time.Second),
	coSoFar("B"), // waiting: nothing
	coRun("get", "e1", "--prefix", "--sort-by=create"),
	coRun("get", "e1", "--prefix", "--sort-by=create", "--keys-only", "-w", "fields"),
	coStart("obs2", "elect", "--listen", "e1"),
	coWait("obs2", `pA\n`),
	coStop("A"), // resigns
	coWait("B", `e1/[0-9a-f]+\npB\n`),
	coWait("obs1", `pB\n`),
	coWait("obs2", `pB\n`),
	coRun("get", "e1", "--prefix"),
	coStop("B"),
	coStop("obs1"),
	coStop("obs2"),
	coRun("get", "e1", "--prefix", "--count-only", "-w", "json"),
}

// lockScript: a holder, a waiter that gets the lock when the holder is
// interrupted, and the exec-command form (environment, exit codes).
var lockScript = []coStep{
	coRun("lock"), // client error: no name
	coStart("A", "lock", "l1"),
	coWait("A", `l1/[0-9a-f]+\n`),
	coStart("B", "lock", "l1"),
	coSleep(time.Second),
	coSoFar("B"), // waiting: nothing
	coRun("get", "l1", "--prefix", "--sort-by=create"),
	coRun("get", "l1", "--prefix", "--sort-by=create", "-w", "fields"),
	coStart("C", "lock", "l1", "printenv", "ETCD_LOCK_KEY", "ETCD_LOCK_REV"),
	coSleep(500 * time.Millisecond),
	coStop("A"), // unlocks: B holds it
	coWait("B", `l1/[0-9a-f]+\n`),
	coSoFar("C"), // still waiting: nothing
	coStop("B"),  // C runs its command and ends
	coExit("C"),
	coRun("lock", "l1", "false"), // the command's exit code
	coRun("lock", "--ttl=5", "l1", "echo", "held"),
	coRun("lock", "l1", "no-such-command-sett-compat"),
	coRun("get", "l1", "--prefix", "--count-only", "-w", "json"),
}

// TestCoordinationEtcdctl runs etcdctl's elect and lock (recipes over
// sessions, watches and transactions) against etcd and sett, background
// processes included, and compares everything each invocation printed.
// Session lease IDs are normalized in order of appearance.
func TestCoordinationEtcdctl(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and sett")
	}
	t.Parallel() // overlaps with the other parallel etcdctl suites
	t.Run("elect", func(t *testing.T) {
		bin, sides := startSides(t)
		runCoScript(t, bin, sides, `e1/([0-9a-f]+)`, electScript)
	})
	t.Run("lock", func(t *testing.T) {
		bin, sides := startSides(t)
		runCoScript(t, bin, sides, `l1/([0-9a-f]+)`, lockScript)
	})
}

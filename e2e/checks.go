package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// storageError matches apiserver log lines that report a storage problem:
// klog error lines about etcd or storage, and the errors a watch cache
// behind its store or a broken watch produce at any level.
var (
	klogError    = regexp.MustCompile(`^E\d{4} `)
	storageWords = regexp.MustCompile(`(?i)etcd|storage|watch chan|cacher|compact`)
	alwaysBad    = regexp.MustCompile(`(?i)too large resource version|Cache consistency check failed|inconsistent|event was received with a resource version`)
)

// StorageErrors returns the log lines that report storage errors, except
// inside the given byte ranges of the log (a store restart).
func StorageErrors(log string, skip [][2]int) []string {
	var bad []string
	offset := 0
	for _, line := range strings.SplitAfter(log, "\n") {
		start := offset
		offset += len(line)
		skipped := false
		for _, r := range skip {
			if start >= r[0] && start < r[1] {
				skipped = true
			}
		}
		if skipped {
			continue
		}
		if alwaysBad.MatchString(line) || klogError.MatchString(line) && storageWords.MatchString(line) {
			bad = append(bad, strings.TrimSpace(line))
		}
	}
	return bad
}

// CheckEvents verifies the events the workload created against the event
// TTL: every event past its lease's end (counted from its creation or the
// store's last restart, whichever is later) is gone, and every recent one
// is still there. It reports how many expired.
func (w *Workload) CheckEvents(ctx context.Context, ttl time.Duration) (expired int, err error) {
	const slack = 20 * time.Second // lease expiry checks, a loaded machine
	w.mu.Lock()
	events, restart := append([]eventRecord(nil), w.events...), w.lastRestart
	w.mu.Unlock()
	for _, e := range events {
		since := e.created
		if restart.After(since) {
			since = restart // a restarted etcd renews every lease
		}
		age := time.Since(since)
		_, getErr := w.kube.CoreV1().Events(e.namespace).Get(ctx, e.name, metav1.GetOptions{})
		switch {
		case age > ttl+slack && !apierrors.IsNotFound(getErr):
			return expired, fmt.Errorf("event %s/%s still there %v after creation with a TTL of %v (get: %v)", e.namespace, e.name, age.Round(time.Second), ttl, getErr)
		case time.Since(e.created) < ttl-slack && getErr != nil:
			return expired, fmt.Errorf("event %s/%s gone %v after creation with a TTL of %v: %v", e.namespace, e.name, time.Since(e.created).Round(time.Second), ttl, getErr)
		case apierrors.IsNotFound(getErr):
			expired++
		}
	}
	return expired, nil
}

// OldestEvent is when the first workload event was created.
func (w *Workload) OldestEvent() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.events) == 0 {
		return time.Time{}
	}
	oldest := w.events[0].created
	for _, e := range w.events {
		if e.created.Before(oldest) {
			oldest = e.created
		}
	}
	return oldest
}

// CheckNamespacesGone waits for every deleted namespace to disappear.
func (w *Workload) CheckNamespacesGone(ctx context.Context) error {
	w.mu.Lock()
	names := append([]string(nil), w.tmpNamespaces...)
	w.mu.Unlock()
	for _, ns := range names {
		err := eventually(ctx, "deleted namespace "+ns+" gone", rolloutTimeout, func(ctx context.Context) (bool, error) {
			_, err := w.kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			return apierrors.IsNotFound(err), err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

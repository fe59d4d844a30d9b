package autocompact

// runRevision compacts every revisionInterval to the current revision
// minus the retention, unless that is not positive or is the revision
// last compacted. A failure is retried at the next interval.
func (r *Runner) runRevision() {
	defer close(r.done)
	keep := r.cfg.Policy.Revisions
	var lastRev int64
	for {
		act, stopped := r.wait(revisionInterval)
		if stopped {
			return
		}
		if !act {
			continue
		}
		rev := r.cfg.Rev() - keep
		if rev <= 0 || rev == lastRev {
			continue
		}
		r.cfg.Logger.Info("starting auto revision compaction", "revision", rev, "revision-compaction-retention", keep)
		took, err := r.compact(rev)
		if err != nil {
			r.cfg.Logger.Warn("failed auto revision compaction", "revision", rev, "revision-compaction-retention", keep,
				"retry-interval", revisionInterval, "error", err)
			continue
		}
		lastRev = rev
		r.cfg.Logger.Info("completed auto revision compaction", "revision", rev, "revision-compaction-retention", keep, "took", took)
	}
}

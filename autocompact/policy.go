package autocompact

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Modes of --auto-compaction-mode.
const (
	ModePeriodic = "periodic"
	ModeRevision = "revision"
)

// Flag defaults, as etcd's: periodic, and a retention of 0 (off).
const (
	DefaultMode      = ModePeriodic
	DefaultRetention = "0"
)

// Policy is a parsed --auto-compaction-mode and --auto-compaction-retention.
// The zero Policy is off.
type Policy struct {
	Mode string
	// Period is the periodic mode's retention window.
	Period time.Duration
	// Revisions is how many revisions the revision mode keeps.
	Revisions int64
}

// Enabled says whether the policy compacts at all (a retention of 0 is
// etcd's "off").
func (p Policy) Enabled() bool {
	switch p.Mode {
	case ModePeriodic:
		return p.Period != 0
	case ModeRevision:
		return p.Revisions != 0
	}
	return false
}

// minPeriod is the shortest periodic retention: the runner samples every
// tenth of it, and a tenth of less is no time at all (etcd divides by zero
// and crashes there).
const minPeriod = 10 * time.Nanosecond

// ParsePolicy reads the two flags with etcd's rules and errors. A bare
// integer retention is hours in periodic mode and a revision count in
// revision mode; anything else must be a Go duration, which revision mode
// then takes as a count of nanoseconds (etcd's reading, kept as is).
//
// sett refuses two retentions etcd accepts: a negative one (with which
// etcd's periodic compactor compacts away nearly all history in a busy
// loop) and a periodic one under 10ns (which crashes etcd).
func ParsePolicy(mode, retention string) (Policy, error) {
	switch mode {
	case ModePeriodic, ModeRevision:
	case "":
		return Policy{}, errors.New("undefined auto-compaction-mode")
	default:
		return Policy{}, fmt.Errorf("unknown auto-compaction-mode %q", mode)
	}
	if retention == "" {
		retention = DefaultRetention
	}
	var d time.Duration
	if h, err := strconv.Atoi(retention); err == nil && h >= 0 {
		d = time.Duration(h)
		if mode == ModePeriodic {
			d *= time.Hour
		}
	} else {
		if d, err = time.ParseDuration(retention); err != nil {
			return Policy{}, fmt.Errorf("error parsing CompactionRetention: %w", err)
		}
	}
	if d < 0 {
		return Policy{}, fmt.Errorf("invalid auto-compaction-retention %q: must not be negative", retention)
	}
	p := Policy{Mode: mode}
	if mode == ModeRevision {
		p.Revisions = int64(d)
		return p, nil
	}
	if d != 0 && d < minPeriod {
		return Policy{}, fmt.Errorf("invalid auto-compaction-retention %q: a periodic retention must be at least %v", retention, minPeriod)
	}
	p.Period = d
	return p, nil
}

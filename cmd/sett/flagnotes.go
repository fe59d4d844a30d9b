package main

import (
	"fmt"
	"strings"
)

// refusedFlags are etcd flags sett refuses when set (to anything but their
// off value), because ignoring them would change what the cluster is:
// the member would bootstrap or trust differently from what was asked.
var refusedFlags = map[string]string{
	"discovery":           "sett does not bootstrap through a discovery service; list the members with --initial-cluster",
	"discovery-endpoints": "sett does not bootstrap through a discovery service; list the members with --initial-cluster",
	"discovery-srv":       "sett does not bootstrap through DNS SRV discovery; list the members with --initial-cluster",
}

// refusedFlag fails the parse when set to an on value.
type refusedFlag struct {
	name, reason string
	isBool       bool
}

func (f refusedFlag) String() string   { return "" }
func (f refusedFlag) IsBoolFlag() bool { return f.isBool }
func (f refusedFlag) Set(v string) error {
	if v == "" || (f.isBool && v == "false") {
		return nil
	}
	return fmt.Errorf("--%s is not supported: %s", f.name, f.reason)
}

// ignoredNotes say why each etcd flag sett accepts without effect may be
// ignored: the README's flag table prints them and TestFlagTable requires
// one for every such flag.
var ignoredNotes = map[string]string{
	"auth-token":                                     "sett's auth is not implemented here; tokens are not issued",
	"auth-token-ttl":                                 "as --auth-token",
	"backend-batch-interval":                         "bbolt tuning; sett's storage is Badger (--storage-* flags)",
	"backend-batch-limit":                            "bbolt tuning; sett's storage is Badger (--storage-* flags)",
	"backend-bbolt-freelist-type":                    "bbolt tuning; sett's storage is Badger",
	"bcrypt-cost":                                    "as --auth-token",
	"bootstrap-defrag-threshold-megabytes":           "bbolt defragmentation at start; Badger needs none",
	"compact-hash-check-time":                        "sett does not run the periodic compaction hash check",
	"compaction-batch-limit":                         "sett bounds its compaction batches itself",
	"compaction-sleep-interval":                      "sett bounds its compaction batches itself",
	"corrupt-check-time":                             "sett does not run the periodic corruption check",
	"distributed-tracing-address":                    "sett exports no OpenTelemetry traces",
	"distributed-tracing-instance-id":                "sett exports no OpenTelemetry traces",
	"distributed-tracing-sampling-rate":              "sett exports no OpenTelemetry traces",
	"distributed-tracing-service-name":               "sett exports no OpenTelemetry traces",
	"downgrade-check-time":                           "sett has no downgrade process",
	"enable-distributed-tracing":                     "sett exports no OpenTelemetry traces",
	"experimental-compact-hash-check-enabled":        "as --compact-hash-check-time",
	"experimental-enable-lease-checkpoint":           "sett always checkpoints lease TTLs",
	"experimental-enable-lease-checkpoint-persist":   "sett always checkpoints lease TTLs",
	"experimental-initial-corrupt-check":             "sett does not compare hashes with peers at start",
	"experimental-memory-mlock":                      "as --memory-mlock",
	"experimental-txn-mode-write-with-shared-buffer": "bbolt read buffer tuning",
	"feature-gates":                                  "sett has no feature gates; each gated etcd feature is listed here under its experimental flag",
	"initial-election-tick-advance":                  "sett's election timing is its own (a single voter campaigns at once)",
	"max-learners":                                   "sett does not limit the number of learners",
	"max-snapshots":                                  "sett keeps one raft snapshot (its store is the snapshot)",
	"max-wals":                                       "sett releases raft log segments below the snapshot itself",
	"memory-mlock":                                   "sett does not lock its memory",
	"pre-vote":                                       "sett always uses pre-vote",
	"raft-read-timeout":                              "sett's peer transport uses gRPC keepalives",
	"raft-write-timeout":                             "sett's peer transport uses gRPC keepalives",
	"strict-reconfig-check":                          "sett always refuses a membership change that would lose quorum",
	"v2-deprecation":                                 "sett has no v2 store",
	"wal-dir":                                        "sett's raft log lives in the data dir",
}

// ignoredNote is the reason an ignored flag may be ignored, or "".
func ignoredNote(name string) string {
	if n, ok := ignoredNotes[name]; ok {
		return n
	}
	if strings.HasPrefix(name, "discovery-") {
		return "used only with --discovery or --discovery-endpoints, which sett refuses"
	}
	if base, ok := strings.CutPrefix(name, "experimental-"); ok {
		if n, ok := ignoredNotes[base]; ok {
			return n
		}
	}
	return ""
}

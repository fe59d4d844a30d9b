package clustertest

import (
	"strings"
	"testing"
)

// testRef is revisions 2..5: a put, a pair of puts (one revision, two
// events), a delete, a put.
func testRef(t *testing.T) *RevHistory {
	t.Helper()
	ref := WatchLog{Name: "ref", StartRev: 2, Responses: []WatchResponse{
		{Events: []WatchEvent{{Rev: 2, Key: "/p/k0", Value: "a"}}},
		{Events: []WatchEvent{{Rev: 3, Key: "/p/k1", Value: "b"}, {Rev: 3, Key: "/p/k2", Value: "c"}}},
		{Events: []WatchEvent{{Rev: 4, Key: "/p/k0", Delete: true}, {Rev: 5, Key: "/p/k1", Value: "d"}}},
	}}
	h, err := NewRevHistory(ref, 2, 5)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

var (
	ev2  = WatchEvent{Rev: 2, Key: "/p/k0", Value: "a"}
	ev3a = WatchEvent{Rev: 3, Key: "/p/k1", Value: "b"}
	ev3b = WatchEvent{Rev: 3, Key: "/p/k2", Value: "c"}
	ev4  = WatchEvent{Rev: 4, Key: "/p/k0", Delete: true}
	ev5  = WatchEvent{Rev: 5, Key: "/p/k1", Value: "d"}
)

func events(evs ...WatchEvent) WatchResponse { return WatchResponse{Events: evs} }
func progress(rev int64) WatchResponse       { return WatchResponse{Progress: true, Rev: rev} }

func TestCheckWatch(t *testing.T) {
	tests := []struct {
		name     string
		start    int64
		resps    []WatchResponse
		complete bool
		errs     []string // substrings, one per expected error; none: valid
	}{
		{"all, resumed, with progress", 1, []WatchResponse{
			progress(1), events(ev2), progress(2), events(ev3a, ev3b), events(ev4), progress(4), events(ev5), progress(5),
		}, true, nil},
		{"from a later revision", 4, []WatchResponse{events(ev4, ev5)}, true, nil},
		{"incomplete allowed", 1, []WatchResponse{events(ev2)}, false, nil},
		{"incomplete", 1, []WatchResponse{events(ev2, ev3a, ev3b)}, true, []string{"received 3 events"}},
		{"gap", 1, []WatchResponse{events(ev2), events(ev4, ev5)}, true, []string{"missing, duplicated or different"}},
		{"duplicate", 1, []WatchResponse{events(ev2), events(ev2, ev3a, ev3b, ev4, ev5)}, true, []string{"not unique", "missing, duplicated or different"}},
		{"unordered", 1, []WatchResponse{events(ev2, ev4, ev3a, ev3b, ev5)}, true, []string{"unordered", "unordered", "missing, duplicated or different"}},
		{"different value", 1, []WatchResponse{events(ev2, ev3a, WatchEvent{Rev: 3, Key: "/p/k2", Value: "x"})}, true, []string{"missing, duplicated or different"}},
		{"split revision", 1, []WatchResponse{events(ev2, ev3a), events(ev3b, ev4, ev5)}, true, []string{"not atomic", "not atomic"}},
		{"progress ahead of events", 1, []WatchResponse{events(ev2), progress(3), events(ev3a, ev3b, ev4, ev5)}, true, []string{"progress notification at revision 3"}},
		{"beyond the history", 1, []WatchResponse{events(ev2, ev3a, ev3b, ev4, ev5, WatchEvent{Rev: 6, Key: "/p/k0", Value: "z"})}, true, []string{"beyond the reference"}},
	}
	ref := testRef(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := CheckWatch(ref, WatchLog{Name: "w", StartRev: tt.start, Responses: tt.resps}, tt.complete)
			if len(errs) != len(tt.errs) {
				t.Fatalf("got errors %v, want %d matching %q", errs, len(tt.errs), tt.errs)
			}
			for i, e := range errs {
				if !strings.Contains(e.Error(), tt.errs[i]) {
					t.Errorf("error %d: %v, want it to mention %q", i, e, tt.errs[i])
				}
			}
		})
	}
}

func TestCheckWatchReportsEndedWatches(t *testing.T) {
	errs := CheckWatch(testRef(t), WatchLog{Name: "w", StartRev: 1, Errors: []string{"session 1: canceled"}}, false)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "watch ended") {
		t.Fatalf("got %v", errs)
	}
}

func TestNewRevHistoryRejectsGaps(t *testing.T) {
	ref := WatchLog{Name: "ref", Responses: []WatchResponse{events(ev2), events(ev4)}}
	if _, err := NewRevHistory(ref, 2, 4); err == nil || !strings.Contains(err.Error(), "no event at revision 3") {
		t.Fatalf("got %v", err)
	}
	if _, err := NewRevHistory(WatchLog{Responses: []WatchResponse{events(ev2, ev3a)}}, 2, 2); err == nil {
		t.Fatal("an event beyond the last revision was accepted")
	}
}

func TestCheckAcks(t *testing.T) {
	w := &Workload{Prefix: "/p/"}
	ops := []Input{put(0, "a"), pair(1, "b", 2, "c"), del(0), put(1, "d"), put(1, "never")}
	ok := []Ack{{Rev: 2, Key: 0, Value: "a"}, {Rev: 3, Key: 1, Value: "b"}, {Rev: 3, Key: 2, Value: "c"}, {Rev: 4, Key: 0, Delete: true}, {Rev: 5, Key: 1, Value: "d"}}
	if errs := CheckAcks(testRef(t), w, ok, ops); len(errs) != 0 {
		t.Fatalf("valid: %v", errs)
	}
	lost := append(ok, Ack{Rev: 5, Key: 1, Value: "never"})
	if errs := CheckAcks(testRef(t), w, lost, ops); len(errs) != 1 || !strings.Contains(errs[0].Error(), "acknowledged write lost") {
		t.Fatalf("lost write: %v", errs)
	}
	if errs := CheckAcks(testRef(t), w, ok, []Input{ops[0], ops[1], ops[2], ops[4]}); len(errs) != 1 || !strings.Contains(errs[0].Error(), "no client's write") {
		t.Fatalf("phantom write: %v", errs)
	}
}

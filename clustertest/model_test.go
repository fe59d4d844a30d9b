package clustertest

import (
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// op builds a porcupine operation; ret < 0 means the outcome is unknown.
func op(client int, in Input, call, ret int64, out Output) porcupine.Operation {
	if ret < 0 {
		ret, out = math.MaxInt64, Output{Unknown: true}
	}
	return porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret}
}

func put(k int, v string) Input { return Input{Kind: OpPut, Key: k, Value: v} }
func get(k int) Input           { return Input{Kind: OpGet, Key: k} }
func del(k int) Input           { return Input{Kind: OpDelete, Key: k} }
func cas(k int, mod int64, v string) Input {
	return Input{Kind: OpCAS, Key: k, ExpectModRev: mod, Value: v}
}
func pair(k int, v string, k2 int, v2 string) Input {
	return Input{Kind: OpPutPair, Key: k, Value: v, Key2: k2, Value2: v2}
}
func read(rev int64, v string, mod int64) Output {
	return Output{Rev: rev, Exists: true, Value: v, ModRev: mod}
}

// recorder is a testing.TB that keeps errors instead of failing.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper()             {}
func (r *recorder) Logf(string, ...any) {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func TestCheckLinearizable(t *testing.T) {
	tests := []struct {
		name string
		ops  []porcupine.Operation
		want porcupine.CheckResult
	}{
		{"sequential", []porcupine.Operation{
			op(0, put(0, "a"), 0, 1, Output{Rev: 2}),
			op(0, get(0), 2, 3, read(2, "a", 2)),
			op(0, cas(0, 2, "b"), 4, 5, Output{Rev: 3, Succeeded: true}),
			op(0, cas(0, 2, "c"), 6, 7, read(3, "b", 3)),
			op(0, pair(1, "x", 2, "y"), 8, 9, Output{Rev: 4}),
			op(0, del(0), 10, 11, Output{Rev: 5, Deleted: 1}),
			op(0, del(0), 12, 13, Output{Rev: 5}),
			op(0, get(2), 14, 15, read(5, "y", 4)),
			op(0, get(0), 16, 17, Output{Rev: 5}),
		}, porcupine.Ok},
		{"concurrent writes in either order", []porcupine.Operation{
			op(0, put(0, "a"), 0, 10, Output{Rev: 3}),
			op(1, put(0, "b"), 1, 9, Output{Rev: 2}),
			op(2, get(0), 11, 12, read(3, "a", 3)),
		}, porcupine.Ok},
		{"stale read", []porcupine.Operation{
			op(0, put(0, "a"), 0, 1, Output{Rev: 2}),
			op(0, put(0, "b"), 2, 3, Output{Rev: 3}),
			op(1, get(0), 4, 5, read(2, "a", 2)),
		}, porcupine.Illegal},
		{"lost acknowledged write", []porcupine.Operation{
			op(0, put(0, "a"), 0, 1, Output{Rev: 2}),
			op(1, get(0), 2, 3, Output{Rev: 1}),
		}, porcupine.Illegal},
		{"two writes at one revision", []porcupine.Operation{
			op(0, put(0, "a"), 0, 1, Output{Rev: 2}),
			op(1, put(1, "b"), 0, 1, Output{Rev: 2}),
		}, porcupine.Illegal},
		{"CAS succeeding on a stale mod revision", []porcupine.Operation{
			op(0, put(0, "a"), 0, 1, Output{Rev: 2}),
			op(0, put(0, "b"), 2, 3, Output{Rev: 3}),
			op(1, cas(0, 2, "c"), 4, 5, Output{Rev: 4, Succeeded: true}),
		}, porcupine.Illegal},
		{"unknown write seen later", []porcupine.Operation{
			op(0, put(0, "a"), 0, -1, Output{}),
			op(1, get(0), 5, 6, read(2, "a", 2)),
		}, porcupine.Ok},
		{"unknown write never seen", []porcupine.Operation{
			op(0, put(0, "a"), 0, -1, Output{}),
			op(1, get(0), 5, 6, Output{Rev: 1}),
		}, porcupine.Ok},
		{"read before its write was called", []porcupine.Operation{
			op(1, get(0), 0, 1, read(2, "a", 2)),
			op(0, put(0, "a"), 5, -1, Output{}),
		}, porcupine.Illegal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			got := CheckLinearizable(rec, tt.ops, 1, 10*time.Second)
			if got != tt.want {
				t.Fatalf("got %v, want %v (errors %q)", got, tt.want, rec.errs)
			}
			if (got == porcupine.Ok) != (len(rec.errs) == 0) {
				t.Fatalf("result %v with errors %q", got, rec.errs)
			}
			if got == porcupine.Illegal {
				_, path, ok := strings.Cut(rec.errs[0], "visualization: ")
				if !ok {
					t.Fatalf("no visualization reported: %q", rec.errs)
				}
				b, err := os.ReadFile(path)
				if err != nil || !strings.Contains(string(b), "<html") {
					t.Fatalf("visualization %s: %v", path, err)
				}
				os.Remove(path)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	w := &Workload{Prefix: "/p/"}
	ref := &RevHistory{First: 2, Last: 4, ByRev: map[int64][]WatchEvent{}}
	for _, ev := range []WatchEvent{
		{Rev: 2, Key: "/p/k0", Value: "a"},
		{Rev: 3, Key: "/p/k1", Value: "b"},
		{Rev: 4, Key: "/p/k1", Delete: true},
	} {
		ref.ByRev[ev.Rev] = append(ref.ByRev[ev.Rev], ev)
		ref.Events = append(ref.Events, ev)
	}
	ops := []porcupine.Operation{
		op(0, put(0, "a"), 0, -1, Output{}),                          // applied at 2
		op(1, cas(1, 0, "b"), 0, 1, Output{Rev: 3, Succeeded: true}), // acknowledged
		op(2, put(0, "lost"), 0, -1, Output{}),                       // never applied
		op(3, del(0), 0, -1, Output{}),                               // k0 never deleted
		op(4, del(1), 0, -1, Output{}),                               // maybe the delete at 4
	}
	got, n := Resolve(ops, ref, w)
	if n != (ResolveCounts{Applied: 1, NoEffect: 2, Undecided: 1}) {
		t.Errorf("counts %+v", n)
	}
	if len(got) != 3 {
		t.Fatalf("resolved to %d operations, want 3: %+v", len(got), got)
	}
	if out := got[0].Output.(Output); out.Unknown || out.Rev != 2 || got[0].Return != math.MaxInt64 {
		t.Errorf("unknown put seen at revision 2 resolved to %+v returning at %d", out, got[0].Return)
	}
	if in := got[2].Input.(Input); in.Kind != OpDelete || in.Key != 1 || !got[2].Output.(Output).Unknown {
		t.Errorf("the unexplained delete of k1 should stay unknown: %+v", got[2])
	}
	if res := CheckLinearizable(t, append(got, op(5, get(1), 10, 11, Output{Rev: 4})), 1, 10*time.Second); res != porcupine.Ok {
		t.Errorf("resolved history: %v", res)
	}
}

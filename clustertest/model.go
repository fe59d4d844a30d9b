package clustertest

import (
	"fmt"
	"hash/maphash"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// kvState is one key of the model; ModRev 0 means absent.
type kvState struct {
	Value  string
	ModRev int64
}

// modelState is the part of etcd's KV the workload touches: the store
// revision (every write to any key moves it, so the model cannot be split
// by key) and the keys. It is comparable with ==.
type modelState struct {
	Rev int64
	KV  [NumKeys]kvState
}

// apply returns the state after in takes effect, and the output a
// successful response would carry.
func (s modelState) apply(in Input) (modelState, Output) {
	cur := s.KV[in.Key]
	read := Output{Rev: s.Rev, Exists: cur.ModRev != 0, Value: cur.Value, ModRev: cur.ModRev}
	switch in.Kind {
	case OpGet:
		return s, read
	case OpPut:
		s.Rev++
		s.KV[in.Key] = kvState{Value: in.Value, ModRev: s.Rev}
		return s, Output{Rev: s.Rev}
	case OpPutPair:
		s.Rev++
		s.KV[in.Key] = kvState{Value: in.Value, ModRev: s.Rev}
		s.KV[in.Key2] = kvState{Value: in.Value2, ModRev: s.Rev}
		return s, Output{Rev: s.Rev}
	case OpDelete:
		if cur.ModRev == 0 {
			return s, Output{Rev: s.Rev}
		}
		s.Rev++
		s.KV[in.Key] = kvState{}
		return s, Output{Rev: s.Rev, Deleted: 1}
	case OpCAS:
		if cur.ModRev != in.ExpectModRev {
			return s, read // Succeeded false, the Else branch's read
		}
		s.Rev++
		s.KV[in.Key] = kvState{Value: in.Value, ModRev: s.Rev}
		return s, Output{Rev: s.Rev, Succeeded: true}
	}
	panic(fmt.Sprintf("clustertest: unknown operation kind %v", in.Kind))
}

// kvModel is a porcupine model of etcd's KV starting at revision initRev
// with none of the keys present.
func kvModel(initRev int64) porcupine.Model {
	seed := maphash.MakeSeed()
	return porcupine.Model{
		Init: func() any { return modelState{Rev: initRev} },
		Step: func(state, input, output any) (bool, any) {
			s, in, out := state.(modelState), input.(Input), output.(Output)
			next, want := s.apply(in)
			if out.Unknown {
				return true, next
			}
			return out == want, next
		},
		Hash: func(state any) uint64 {
			s := state.(modelState)
			var h maphash.Hash
			h.SetSeed(seed)
			fmt.Fprint(&h, s.Rev)
			for _, kv := range s.KV {
				h.WriteString(kv.Value)
				fmt.Fprint(&h, kv.ModRev)
			}
			return h.Sum64()
		},
		DescribeOperation: func(input, output any) string {
			return describeOp(input.(Input), output.(Output))
		},
		DescribeState: func(state any) string {
			s := state.(modelState)
			var b strings.Builder
			fmt.Fprintf(&b, "rev %d", s.Rev)
			for i, kv := range s.KV {
				if kv.ModRev != 0 {
					fmt.Fprintf(&b, ", k%d=%s@%d", i, kv.Value, kv.ModRev)
				}
			}
			return b.String()
		},
	}
}

func describeOp(in Input, out Output) string {
	var call string
	switch in.Kind {
	case OpGet:
		call = fmt.Sprintf("get(k%d)", in.Key)
	case OpPut:
		call = fmt.Sprintf("put(k%d, %s)", in.Key, in.Value)
	case OpPutPair:
		call = fmt.Sprintf("put(k%d, %s; k%d, %s)", in.Key, in.Value, in.Key2, in.Value2)
	case OpDelete:
		call = fmt.Sprintf("delete(k%d)", in.Key)
	case OpCAS:
		call = fmt.Sprintf("cas(k%d mod=%d, %s)", in.Key, in.ExpectModRev, in.Value)
	}
	switch {
	case out.Unknown:
		return call + " -> unknown"
	case in.Kind == OpGet || (in.Kind == OpCAS && !out.Succeeded):
		if !out.Exists {
			return fmt.Sprintf("%s -> absent @%d", call, out.Rev)
		}
		return fmt.Sprintf("%s -> %s mod %d @%d", call, out.Value, out.ModRev, out.Rev)
	case in.Kind == OpDelete:
		return fmt.Sprintf("%s -> deleted %d @%d", call, out.Deleted, out.Rev)
	}
	return fmt.Sprintf("%s -> ok @%d", call, out.Rev)
}

// CheckLinearizable checks ops against the model of etcd's KV starting at
// revision initRev, for at most timeout. A violation fails the test and
// leaves porcupine's HTML visualization in a temporary file; running out of
// time fails it too (size the workload so that it does not).
func CheckLinearizable(t testing.TB, ops []porcupine.Operation, initRev int64, timeout time.Duration) porcupine.CheckResult {
	t.Helper()
	model := kvModel(initRev)
	start := time.Now()
	res, info := porcupine.CheckOperationsVerbose(model, ops, timeout)
	t.Logf("porcupine: %v for %v in %v", res, CountOperations(ops), time.Since(start).Round(time.Millisecond))
	switch res {
	case porcupine.Illegal:
		f, err := os.CreateTemp("", "clustertest-porcupine-*.html")
		if err != nil {
			t.Errorf("history is not linearizable (and the visualization could not be written: %v)", err)
			return res
		}
		defer f.Close()
		if err := porcupine.Visualize(model, info, f); err != nil {
			t.Errorf("history is not linearizable (and the visualization failed: %v)", err)
			return res
		}
		t.Errorf("history is not linearizable; visualization: %s", f.Name())
	case porcupine.Unknown:
		t.Errorf("porcupine could not decide within %v", timeout)
	}
	return res
}

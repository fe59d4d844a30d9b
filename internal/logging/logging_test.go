package logging

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestJSONShape(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.log")
	log, c, err := New(Config{Outputs: []string{path}, Level: "info"})
	if err != nil {
		t.Fatal(err)
	}
	log.With("logger", "raft").Info("became leader at term 2", "n", 1)
	log.Debug("hidden at info")
	c.Close()
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 1 {
		t.Fatalf("lines %q", lines)
	}
	// zap's order: level, ts, logger, caller, msg, then fields.
	var order []string
	dec := json.NewDecoder(strings.NewReader(lines[0]))
	dec.Token()
	for dec.More() {
		k, _ := dec.Token()
		order = append(order, k.(string))
		var v any
		dec.Decode(&v)
	}
	if got := strings.Join(order, ","); got != "level,ts,logger,caller,msg,n" {
		t.Errorf("keys %s in %s", got, lines[0])
	}
	if !strings.Contains(lines[0], `"caller":"logging/logging_test.go:`) {
		t.Errorf("caller in %s", lines[0])
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		c    Config
		want string
	}{
		{"logger", Config{Logger: "capnslog"}, "unknown logger option"},
		{"level", Config{Level: "loud"}, "unknown log-level"},
		{"format", Config{Format: "xml"}, "unsupported log format"},
		{"rotation default", Config{Rotation: true, Outputs: []string{"default"}}, ErrRotationOutputs.Error()},
		{"rotation two files", Config{Rotation: true, Outputs: []string{filepath.Join(dir, "a"), filepath.Join(dir, "b")}}, ErrRotationOutputs.Error()},
		{"rotation json", Config{Rotation: true, Outputs: []string{filepath.Join(dir, "a")}, RotationJSON: "{"}, "improperly formatted log rotation config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := New(tc.c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

// Several outputs get every line; with rotation the file is cut at
// maxsize MB and the old part kept as a backup.
func TestOutputsAndRotation(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	log, c, err := New(Config{Outputs: []string{a, b, a}})
	if err != nil {
		t.Fatal(err)
	}
	log.Info("ready to serve client requests")
	c.Close()
	for _, p := range []string{a, b} {
		if got, _ := os.ReadFile(p); strings.Count(string(got), "ready to serve") != 1 {
			t.Errorf("%s: %q", p, got)
		}
	}

	r := filepath.Join(dir, "rot", "r.log")
	log, c, err = New(Config{Outputs: []string{r}, Rotation: true, RotationJSON: `{"maxsize": 1, "maxbackups": 1}`})
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 64<<10)
	for i := 0; i < 20; i++ { // 1.25 MB
		log.Info(big)
	}
	c.Close()
	files, _ := os.ReadDir(filepath.Dir(r))
	if len(files) != 2 {
		t.Fatalf("files after rotation: %v", files)
	}
	if fi, err := os.Stat(r); err != nil || fi.Size() > 1<<20 {
		t.Fatalf("current file %v %v", fi, err)
	}
}

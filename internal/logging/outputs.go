package logging

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"gopkg.in/natefinch/lumberjack.v2"
)

// Config is etcd's logging flags.
type Config struct {
	Logger  string   // --logger: only "zap" (etcd 3.6 has no other)
	Level   string   // --log-level
	Outputs []string // --log-outputs: default, stderr, stdout, file paths
	Format  string   // --log-format: json or console
	// Rotation is --enable-log-rotation; RotationJSON its
	// --log-rotation-config-json (lumberjack's fields).
	Rotation     bool
	RotationJSON string
}

// DefaultRotationJSON is etcd's default --log-rotation-config-json.
const DefaultRotationJSON = `{"maxsize": 100, "maxage": 0, "maxbackups": 0, "localtime": false, "compress": false}`

// ErrRotationOutputs is etcd's refusal of rotation without exactly one file.
var ErrRotationOutputs = errors.New("--log-outputs requires a single file path when --log-rotate-config-json is defined")

// ParseLevel reads etcd's --log-level values.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "", "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error", "dpanic", "panic", "fatal":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown log-level %q", s)
}

// New opens the outputs and returns the logger and what closes them.
func New(c Config) (*slog.Logger, io.Closer, error) {
	if c.Logger != "" && c.Logger != "zap" {
		return nil, nil, fmt.Errorf("unknown logger option %q", c.Logger)
	}
	lvl, err := ParseLevel(c.Level)
	if err != nil {
		return nil, nil, err
	}
	console := false
	switch c.Format {
	case "", "json":
	case "console":
		console = true
	default:
		return nil, nil, fmt.Errorf("unsupported log format: %s", c.Format)
	}
	w, closer, err := openOutputs(c)
	if err != nil {
		return nil, nil, err
	}
	return slog.New(NewHandler(w, lvl, console)), closer, nil
}

type closers []io.Closer

func (cs closers) Close() error {
	var errs []error
	for _, c := range cs {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// openOutputs resolves --log-outputs: "default" and "stderr" are stderr,
// "stdout" stdout, anything else a file opened for append (or, with
// rotation, the one rotated file). Each output appears once.
func openOutputs(c Config) (io.Writer, io.Closer, error) {
	outs := c.Outputs
	if len(outs) == 0 {
		outs = []string{"default"}
	}
	var ws []io.Writer
	var cs closers
	seen := map[string]bool{}
	files := 0
	for _, o := range outs {
		switch o {
		case "default":
			if c.Rotation {
				return nil, nil, ErrRotationOutputs
			}
		case "stderr", "stdout":
		default:
			files++
		}
	}
	if c.Rotation && files != 1 {
		return nil, nil, ErrRotationOutputs
	}
	for _, o := range outs {
		if o == "default" {
			o = "stderr"
		}
		if seen[o] {
			continue
		}
		seen[o] = true
		switch o {
		case "stderr":
			ws = append(ws, os.Stderr)
		case "stdout":
			ws = append(ws, os.Stdout)
		default:
			if c.Rotation {
				lj, err := rotator(o, c.RotationJSON)
				if err != nil {
					cs.Close()
					return nil, nil, err
				}
				ws, cs = append(ws, lj), append(cs, lj)
				continue
			}
			f, err := os.OpenFile(o, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
			if err != nil {
				cs.Close()
				return nil, nil, fmt.Errorf("open log output %s: %w", o, err)
			}
			ws, cs = append(ws, f), append(cs, f)
		}
	}
	return io.MultiWriter(ws...), cs, nil
}

// rotator is etcd's rotated log file: lumberjack with the JSON config.
func rotator(path, cfg string) (*lumberjack.Logger, error) {
	if cfg == "" {
		cfg = DefaultRotationJSON
	}
	lj := &lumberjack.Logger{}
	if err := json.Unmarshal([]byte(cfg), lj); err != nil {
		return nil, fmt.Errorf("improperly formatted log rotation config: %w", err)
	}
	lj.Filename = path
	return lj, nil
}

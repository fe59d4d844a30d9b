package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"
)

// TimeLayout is how etcd (zap with its ISO8601 encoder in UTC) writes ts.
const TimeLayout = "2006-01-02T15:04:05.000000Z0700"

// LoggerKey is the attribute that names a sub-logger ("raft", "bbolt");
// zap writes it before caller, and so does Handler.
const LoggerKey = "logger"

// Handler encodes records as zap does for etcd. Invariant: one record is
// one Write of one line to out, under mu shared by every derived handler.
type Handler struct {
	out     io.Writer
	mu      *sync.Mutex
	level   slog.Leveler
	console bool
	name    string // the "logger" attribute, when set by With
	pre     []field
	groups  []string
}

type field struct {
	key string
	val any
}

// NewHandler returns a Handler writing json (console false) or zap's
// console encoding to out at level and above.
func NewHandler(out io.Writer, level slog.Leveler, console bool) *Handler {
	return &Handler{out: out, mu: &sync.Mutex{}, level: level, console: console}
}

// Enabled reports whether level is logged.
func (h *Handler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

// WithAttrs returns a handler that adds attrs to every record.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.pre = append([]field{}, h.pre...)
	for _, a := range attrs {
		if a.Key == LoggerKey && len(h.groups) == 0 {
			c.name = a.Value.String()
			continue
		}
		c.pre = appendAttr(c.pre, h.groups, a)
	}
	return &c
}

// WithGroup returns a handler that nests later attributes under name.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.groups = append(append([]string{}, h.groups...), name)
	return &c
}

// levelName is zap's lower-case level name.
func levelName(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "error"
	case l >= slog.LevelWarn:
		return "warn"
	case l >= slog.LevelInfo:
		return "info"
	}
	return "debug"
}

// caller is zap's short caller: the file's directory and name, and line.
func caller(pc uintptr) string {
	if pc == 0 {
		return ""
	}
	f, _ := runtime.CallersFrames([]uintptr{pc}).Next()
	if f.File == "" {
		return ""
	}
	dir, file := filepath.Split(f.File)
	return filepath.Base(dir) + "/" + file + ":" + strconv.Itoa(f.Line)
}

// Handle writes one record.
func (h *Handler) Handle(_ context.Context, r slog.Record) error {
	fields := append([]field{}, h.pre...)
	name := h.name
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == LoggerKey && len(h.groups) == 0 {
			name = a.Value.String()
			return true
		}
		fields = appendAttr(fields, h.groups, a)
		return true
	})
	var b bytes.Buffer
	ts := r.Time
	if ts.IsZero() {
		ts = time.Now()
	}
	if h.console {
		h.console1(&b, ts, r, name, fields)
	} else {
		h.json1(&b, ts, r, name, fields)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := h.out.Write(b.Bytes())
	return err
}

func (h *Handler) json1(b *bytes.Buffer, ts time.Time, r slog.Record, name string, fields []field) {
	b.WriteString(`{"level":"` + levelName(r.Level) + `","ts":"` + ts.Format(TimeLayout) + `"`)
	if name != "" {
		b.WriteString(`,"logger":`)
		writeJSON(b, name)
	}
	if c := caller(r.PC); c != "" {
		b.WriteString(`,"caller":`)
		writeJSON(b, c)
	}
	b.WriteString(`,"msg":`)
	writeJSON(b, r.Message)
	for _, f := range fields {
		b.WriteByte(',')
		writeJSON(b, f.key)
		b.WriteByte(':')
		writeJSON(b, f.val)
	}
	b.WriteString("}\n")
}

// console1 is zap's console encoding: tab-separated ts, level, logger,
// caller, msg, then the fields as one JSON object.
func (h *Handler) console1(b *bytes.Buffer, ts time.Time, r slog.Record, name string, fields []field) {
	b.WriteString(ts.Format(TimeLayout) + "\t" + levelName(r.Level))
	if name != "" {
		b.WriteString("\t" + name)
	}
	if c := caller(r.PC); c != "" {
		b.WriteString("\t" + c)
	}
	b.WriteString("\t" + r.Message)
	if len(fields) > 0 {
		b.WriteString("\t{")
		for i, f := range fields {
			if i > 0 {
				b.WriteString(", ")
			}
			writeJSON(b, f.key)
			b.WriteString(": ")
			writeJSON(b, f.val)
		}
		b.WriteByte('}')
	}
	b.WriteByte('\n')
}

func writeJSON(b *bytes.Buffer, v any) {
	enc, err := json.Marshal(v)
	if err != nil {
		enc, _ = json.Marshal(fmt.Sprint(v))
	}
	b.Write(enc)
}

// appendAttr flattens a into fields, nesting groups as JSON objects.
func appendAttr(fields []field, groups []string, a slog.Attr) []field {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return fields
	}
	v := value(a.Value)
	if a.Value.Kind() == slog.KindGroup && a.Key == "" {
		for _, g := range a.Value.Group() {
			fields = appendAttr(fields, groups, g)
		}
		return fields
	}
	for i := len(groups) - 1; i >= 0; i-- {
		v = map[string]any{a.Key: v}
		a.Key = groups[i]
	}
	return append(fields, field{a.Key, v})
}

// value is how zap (with etcd's encoders) writes v: durations and times as
// strings, errors as their text.
func value(v slog.Value) any {
	switch v.Kind() {
	case slog.KindDuration:
		return v.Duration().String()
	case slog.KindTime:
		return v.Time().Format(TimeLayout)
	case slog.KindGroup:
		m := map[string]any{}
		for _, a := range v.Group() {
			m[a.Key] = value(a.Value.Resolve())
		}
		return m
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return x.Error()
		case fmt.Stringer:
			return x.String()
		}
		return v.Any()
	}
	return v.Any()
}

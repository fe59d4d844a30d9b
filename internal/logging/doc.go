// Package logging writes sett's logs in etcd's shape: zap's JSON or
// console encoding with etcd's keys (level, ts, logger, caller, msg, then
// the fields), to the outputs etcd's --log-outputs names, optionally through
// a size-rotated file as etcd's --enable-log-rotation does.
//
// It is a log/slog Handler, so the rest of sett logs through *slog.Logger
// and this package is the one place that decides the shape.
package logging

package main

import (
	"flag"

	"github.com/sett-dev/sett/internal/logging"
)

// addLogFlags adds etcd's logging flags (--log-level is in newFlagSet).
func addLogFlags(fs *flag.FlagSet, c *logging.Config) {
	c.Outputs = []string{"default"}
	fs.StringVar(&c.Logger, "logger", "zap", "Currently only supports 'zap' for structured logging.")
	fs.Var(urlList{&c.Outputs}, "log-outputs", "Specify 'stdout' or 'stderr' to skip journald logging even when running under systemd, or list of comma separated output targets.")
	fs.StringVar(&c.Format, "log-format", "json", "Configures log format. Only supports json, console.")
	fs.BoolVar(&c.Rotation, "enable-log-rotation", false, "Enable log rotation of a single log-outputs file target.")
	fs.StringVar(&c.RotationJSON, "log-rotation-config-json", logging.DefaultRotationJSON, "Configures log rotation if enabled with a JSON logger config. MaxSize(MB), MaxAge(days,0=no limit), MaxBackups(0=no limit), LocalTime(use computers local time), Compress(true/false)")
}

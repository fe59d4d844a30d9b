package server

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/sett-dev/sett/storage"
)

// importEtcd is `sett snapshot restore` of an etcd snapshot or db file:
// it imports the file into a new data directory, showing progress on a
// terminal unless quiet.
func importEtcd(file, dir string, opts storage.ImportOptions, quiet bool, stdout, stderr io.Writer) int {
	if !quiet && isTerminal(stderr) {
		opts.Progress = newProgress(stderr, "imported", time.Now).report
	}
	res, err := storage.ImportEtcd(file, dir, opts)
	if err != nil {
		fmt.Fprintln(stderr, "Error:", err)
		return 1
	}
	fmt.Fprintf(stdout, "restored etcd snapshot %s into %s at revision %d (compacted at %d; %d revision entries, %d leases)\n",
		file, dir, res.Revision, res.CompactRevision, res.Entries, res.Leases)
	return 0
}

// isTerminal tells whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progress prints an import's or export's progress on one terminal line.
type progress struct {
	w     io.Writer
	verb  string // "imported", "exported"
	now   func() time.Time
	start time.Time
}

func newProgress(w io.Writer, verb string, now func() time.Time) *progress {
	return &progress{w: w, verb: verb, now: now, start: now()}
}

func (p *progress) report(ip storage.Progress) {
	fmt.Fprint(p.w, "\r"+progressLine(p.verb, ip, p.now().Sub(p.start)))
	if ip.Done {
		fmt.Fprintln(p.w)
	}
}

// progressLine is one progress report: entries and bytes done, rate, ETA.
func progressLine(verb string, ip storage.Progress, elapsed time.Duration) string {
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(ip.Entries) / s
	}
	eta := "?"
	if rate > 0 && ip.Total >= ip.Entries {
		eta = (time.Duration(float64(ip.Total-ip.Entries)/rate) * time.Second).Round(time.Second).String()
	}
	pct := 100.0
	if ip.Total > 0 {
		pct = 100 * float64(ip.Entries) / float64(ip.Total)
	}
	return fmt.Sprintf("%s %d/%d revisions (%.0f%%), %s, %.0f revisions/s, ETA %s   ",
		verb, ip.Entries, ip.Total, pct, humanBytes(ip.Bytes), rate, eta)
}

package compat

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/sett-dev/sett/internal/testproc"
)

var (
	// Sizes, raft indexes and durations legitimately differ between etcd
	// and sett; only their presence is compared.
	mtReSizeJSON   = regexp.MustCompile(`"(dbSize|dbSizeInUse|raftIndex|raftAppliedIndex)":[0-9]+`)
	mtReSizeFields = regexp.MustCompile(`"(DBSize|DBSizeInUse|RaftIndex|RaftAppliedIndex)" : [0-9]+`)
	// The status table and simple rows: db size, in use, % not in use,
	// quota, leader, learner, term, index, applied index.
	mtReStatusRow = regexp.MustCompile(`(3\.6\.0 ?[,|] *)[0-9.]+ [kMG]?B( ?[,|] *)[0-9.]+ [kMG]?B( ?[,|] *)[0-9]+%(.*?(true|false)[ ,|]+(true|false)[ ,|]+[0-9]+[ ,|]+)[0-9]+([ ,|]+)[0-9]+`)
	mtReDuration  = regexp.MustCompile(`\b[0-9]+(\.[0-9]+)?(µs|ms|s)\b`)
	mtReSizeLog   = regexp.MustCompile(`"size":"[0-9.]+ [kMG]?B"`)
	mtReSpaces    = regexp.MustCompile(` {2,}`)
	mtReDashes    = regexp.MustCompile(`-{2,}`)
)

// mtNormalize extends the etcdctl script's normalization with what the
// maintenance commands print differently by nature.
func mtNormalize(s *etcdctlSide, out, dir string) string {
	out = s.normalize(out)
	out = strings.ReplaceAll(out, dir, "<dir>")
	out = mtReSizeJSON.ReplaceAllString(out, `"$1":<n>`)
	out = mtReSizeFields.ReplaceAllString(out, `"$1" : <n>`)
	out = mtReStatusRow.ReplaceAllString(out, `${1}<size>${2}<size>${3}<pct>${4}<index>${7}<index>`)
	out = mtReDuration.ReplaceAllString(out, `<duration>`)
	out = mtReSizeLog.ReplaceAllString(out, `"size":"<size>"`)
	// Tables pad to their widest cell.
	out = mtReSpaces.ReplaceAllString(out, " ")
	out = mtReDashes.ReplaceAllString(out, "-")
	return out
}

// TestMaintenanceEtcdctl runs etcdctl's maintenance and cluster commands
// against etcd and sett, started with the same name, advertised peer URL
// and token (hence the same member and cluster IDs), and compares their
// output: endpoint status/health/hashkv, member list, alarm list/disarm,
// defrag, move-leader, downgrade, membership errors and snapshot save.
func TestMaintenanceEtcdctl(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and sett")
	}
	bin := testproc.EnsureBinary(t, "etcdctl")
	const adv = "http://127.0.0.1:2380"
	opts := testproc.Options{
		Name:           "compat",
		InitialCluster: "compat=" + adv,
		ExtraArgs:      []string{"--initial-advertise-peer-urls=" + adv, "--initial-cluster-token=sett-compat", "--log-level=warn"},
	}
	var procs [2]*testproc.Proc
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); procs[1] = testproc.StartSett(t, opts) }()
	procs[0] = testproc.StartEtcd(t, opts)
	wg.Wait()
	if t.Failed() {
		return
	}
	var sides [2]*etcdctlSide
	var dirs [2]string
	var member uint64
	for i, name := range []string{"etcd", "sett"} {
		sides[i] = &etcdctlSide{name: name, endpoint: procs[i].ClientURL, hostPort: procs[i].ClientAddr(), leases: map[string]int64{}}
		dirs[i] = t.TempDir()
		s := connect(t, name, procs[i])
		st, err := maint(s).Status(context.Background(), &pb.StatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			member = st.Header.MemberId
		} else if st.Header.MemberId != member {
			t.Fatalf("member IDs differ: etcd %x, sett %x", member, st.Header.MemberId)
		}
	}
	self := fmt.Sprintf("%x", member)

	// raise activates an alarm on both servers (etcdctl cannot).
	raise := func(a pb.AlarmType) {
		for i, name := range []string{"etcd", "sett"} {
			s := connect(t, name, procs[i])
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			_, err := maint(s).Alarm(ctx, &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: member, Alarm: a})
			cancel()
			if err != nil {
				t.Fatalf("%s: raising %v: %v", name, a, err)
			}
		}
	}

	script := []struct {
		args  []string
		stdin string
		do    func()
	}{
		// (Not compared on a fresh member: etcd's raft index starts at 4,
		// after its bootstrap entries, sett's at 0, omitted from JSON.)
		{args: []string{"put", "a", "1"}},
		{args: []string{"put", "b", "2"}},
		{args: []string{"put", "a", "3"}},
		{args: []string{"del", "b"}},
		{args: []string{"put", "c", "4"}},
		{args: []string{"endpoint", "status", "-w", "json"}},
		{args: []string{"endpoint", "status", "-w", "fields"}},
		{args: []string{"endpoint", "status"}},
		{args: []string{"endpoint", "status", "-w", "table"}},
		{args: []string{"endpoint", "health"}},
		{args: []string{"endpoint", "health", "-w", "json"}},
		{args: []string{"endpoint", "health", "-w", "table"}},
		{args: []string{"endpoint", "hashkv"}},
		{args: []string{"endpoint", "hashkv", "-w", "json"}},
		{args: []string{"endpoint", "hashkv", "-w", "fields"}},
		{args: []string{"endpoint", "hashkv", "-w", "table"}},
		{args: []string{"endpoint", "hashkv", "--rev", "3", "-w", "json"}},
		{args: []string{"endpoint", "hashkv", "--rev", "99"}},
		{args: []string{"compaction", "--physical", "4"}},
		{args: []string{"endpoint", "hashkv", "--rev", "3"}},
		{args: []string{"endpoint", "hashkv", "--rev", "4", "-w", "json"}},
		{args: []string{"endpoint", "hashkv", "-w", "json"}},
		{args: []string{"member", "list"}},
		{args: []string{"member", "list", "-w", "json"}},
		{args: []string{"member", "list", "-w", "fields"}},
		{args: []string{"member", "list", "-w", "table"}},
		{args: []string{"member", "list", "--consistency=s", "-w", "json"}},
		{args: []string{"alarm", "list"}},
		{args: []string{"alarm", "list", "-w", "json"}},
		{args: []string{"alarm", "disarm"}},
		{args: []string{"defrag"}},
		{args: []string{"defrag", "-w", "json"}},
		{args: []string{"move-leader", self}},
		{args: []string{"move-leader", "1"}},
		{args: []string{"downgrade", "validate", "3.5"}},
		{args: []string{"downgrade", "validate", "3.4"}},
		{args: []string{"downgrade", "validate", "v3"}},
		{args: []string{"downgrade", "cancel"}},
		{args: []string{"member", "remove", self}},
		{args: []string{"member", "remove", "1"}},
		{args: []string{"member", "promote", self}},
		{args: []string{"member", "promote", "1"}},
		{args: []string{"member", "update", "1", "--peer-urls=http://127.0.0.1:1"}},
		{args: []string{"member", "update", self, "--peer-urls=" + adv}},
		{args: []string{"snapshot", "save", "<dir>/snap.db"}},
		// NOSPACE: listed, reported by status and health, writes refused,
		// deletes allowed, disarmed.
		{do: func() { raise(pb.AlarmType_NOSPACE) }},
		{args: []string{"alarm", "list"}},
		{args: []string{"alarm", "list", "-w", "json"}},
		{args: []string{"endpoint", "status", "-w", "json"}},
		{args: []string{"endpoint", "status"}},
		{args: []string{"endpoint", "health"}},
		{args: []string{"endpoint", "health", "-w", "json"}},
		{args: []string{"put", "d", "5"}},
		{args: []string{"del", "c"}},
		{args: []string{"lease", "grant", "100"}},
		{args: []string{"alarm", "disarm"}},
		{args: []string{"alarm", "list"}},
		{args: []string{"put", "d", "5"}},
		{args: []string{"endpoint", "hashkv", "-w", "json"}},
	}

	for i, c := range script {
		if c.do != nil {
			c.do()
			continue
		}
		name := fmt.Sprintf("%02d %s", i, strings.Join(c.args, " "))
		t.Run(name, func(t *testing.T) {
			var res [2]etcdctlResult
			var errs [2]error
			var wg sync.WaitGroup
			for j := range sides {
				args := make([]string, len(c.args))
				for k, a := range c.args {
					args[k] = strings.ReplaceAll(a, "<dir>", dirs[j])
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					res[j], errs[j] = runEtcdctl(bin, sides[j].endpoint, args, c.stdin)
				}()
			}
			wg.Wait()
			var got [2]etcdctlResult
			for j, s := range sides {
				if errs[j] != nil {
					t.Fatalf("%s: %v", s.name, errs[j])
				}
				got[j] = etcdctlResult{
					stdout: mtNormalize(s, res[j].stdout, dirs[j]),
					stderr: mtNormalize(s, res[j].stderr, dirs[j]),
					code:   res[j].code,
				}
			}
			recordCtl(c.args, got[0] == got[1])
			if got[0] != got[1] {
				t.Errorf("etcdctl %s\n===== etcd =====\n%s===== sett =====\n%s", strings.Join(c.args, " "), got[0], got[1])
			} else if *etcdctlDump {
				t.Logf("etcdctl %s\n%s", strings.Join(c.args, " "), got[0])
			}
		})
	}

	// The snapshot sett saved restores into a data directory sett serves.
	file := filepath.Join(dirs[1], "snap.db")
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("sett's snapshot: %v", err)
	}
	// etcd's file is no sett snapshot, and says so.
	ctx0, cancel0 := context.WithTimeout(context.Background(), time.Minute)
	defer cancel0()
	if out, err := runCommand(ctx0, procs[1].Binary, "snapshot", "status", filepath.Join(dirs[0], "snap.db")); err == nil || !strings.Contains(out, "bbolt") {
		t.Errorf("status of etcd's snapshot: %v\n%s", err, out)
	}
	if out, err := runCommand(ctx0, procs[1].Binary, "snapshot", "status", file, "-w", "json"); err != nil || !strings.Contains(out, `"revision":6,"totalKey":2,`) {
		t.Errorf("sett snapshot status: %v\n%s", err, out)
	}
	restored := filepath.Join(t.TempDir(), "restored")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := runCommand(ctx, procs[1].Binary, "snapshot", "restore", file, "--data-dir", restored)
	if err != nil {
		t.Fatalf("sett snapshot restore: %v\n%s", err, out)
	}
	r := testproc.StartSett(t, testproc.Options{DataDir: restored})
	for _, kv := range [][2]string{{"a", "3"}, {"c", "4"}} {
		got, err := testproc.Etcdctl(t, r.ClientURL, "get", kv[0], "--print-value-only")
		if err != nil || strings.TrimSpace(got) != kv[1] {
			t.Errorf("restored %s = %q, %v; want %q", kv[0], got, err, kv[1])
		}
	}
	if _, err := testproc.Etcdctl(t, r.ClientURL, "get", "b", "--rev", "3"); err == nil || !strings.Contains(err.Error(), "compacted") {
		t.Errorf("read below the restored compaction point: %v", err)
	}
}

func runCommand(ctx context.Context, bin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = etcdctlEnv()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

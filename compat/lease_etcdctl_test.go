package compat

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// leaseCtlStep is one step of the etcdctl lease script: an etcdctl case
// (see etcdctlCase), or a pause that lets leases run down or expire.
type leaseCtlStep struct {
	c     etcdctlCase
	sleep time.Duration
}

func lctl(args ...string) leaseCtlStep { return leaseCtlStep{c: ctl(args...)} }

func lgrant(name string, args ...string) leaseCtlStep {
	return leaseCtlStep{c: ctlGrant(name, args...)}
}

func lsleep(d time.Duration) leaseCtlStep { return leaseCtlStep{sleep: d} }

// leaseEtcdctlScript runs in order on fresh servers (revision 1). Output
// formats: simple, json and fields (protobuf carries binary IDs).
var leaseEtcdctlScript = []leaseCtlStep{
	lgrant("L1", "lease", "grant", "100"),
	lgrant("L2", "lease", "grant", "50", "-w", "json"),
	lgrant("L3", "lease", "grant", "200", "-w", "fields"),
	lctl("put", "--lease", "{L1}", "a", "1"), // 2
	lctl("put", "--lease", "{L1}", "b", "2"), // 3
	lctl("put", "--lease", "{L3}", "c", "3"), // 4

	// timetolive
	lctl("lease", "timetolive", "{L1}"),
	lctl("lease", "timetolive", "{L1}", "--keys"),
	lctl("lease", "timetolive", "{L1}", "--keys", "-w", "json"),
	lctl("lease", "timetolive", "{L1}", "--keys", "-w", "fields"),
	lctl("lease", "timetolive", "{L2}", "--keys"), // no keys
	lctl("lease", "timetolive", "{L2}", "-w", "json"),
	lctl("lease", "timetolive", "{L3}", "-w", "fields"),
	lctl("lease", "timetolive", "1234"), // unknown: "already expired"
	lctl("lease", "timetolive", "1234", "--keys", "-w", "json"),
	lctl("lease", "timetolive", "1234", "-w", "fields"),
	lctl("lease", "timetolive"),           // client error: no ID
	lctl("lease", "timetolive", "zz"),     // client error: bad ID
	lctl("lease", "timetolive", "1", "2"), // client error

	// list: soonest expiry first
	lctl("lease", "list"),
	lctl("lease", "list", "-w", "json"),
	lctl("lease", "list", "-w", "fields"),

	// keep-alive --once
	lctl("lease", "keep-alive", "--once", "{L1}"),
	lctl("lease", "keep-alive", "--once", "{L2}", "-w", "json"),
	lctl("lease", "keep-alive", "--once", "{L3}", "-w", "fields"),
	lctl("lease", "keep-alive", "--once", "1234"), // error: not found
	lctl("lease", "keep-alive", "--once"),         // client error
	lctl("lease", "timetolive", "{L1}"),

	// expiry of L4 (2 s) deletes d; granted just before, so that the steps
	// above cannot outlast it on a slow machine
	lgrant("L4", "lease", "grant", "1"),      // raised to the minimum, 2 s
	lctl("put", "--lease", "{L4}", "d", "4"), // 5
	lsleep(3500 * time.Millisecond),
	lctl("get", "d"),
	lctl("get", "", "--prefix", "-w", "json"),
	lctl("lease", "timetolive", "{L4}", "--keys"),
	lctl("lease", "keep-alive", "--once", "{L4}"),
	lctl("lease", "list"),
	lctl("lease", "revoke", "{L4}"),

	// revoke
	lctl("lease", "revoke", "{L1}"), // 7 (deletes a, b)
	lctl("get", "", "--prefix", "-w", "json"),
	lctl("lease", "timetolive", "{L1}", "--keys"),
	lctl("lease", "timetolive", "{L1}", "-w", "json"),
	lctl("lease", "revoke", "{L1}"), // error: not found
	lctl("lease", "revoke", "{L2}", "-w", "json"),
	lctl("lease", "revoke", "{L3}", "-w", "fields"), // 8 (deletes c)
	lctl("lease", "revoke"),                         // client error
	lctl("lease", "list"),
	lctl("lease", "list", "-w", "json"),
	lctl("get", "", "--prefix", "--rev", "6", "-w", "json"),
}

var (
	// Remaining TTLs, which depend on when each server was asked.
	ctlReRemaining = []*regexp.Regexp{
		regexp.MustCompile(`remaining\((-?[0-9]+)s\)`),
		regexp.MustCompile(`"ttl":(-?[0-9]+)`),
		regexp.MustCompile(`"TTL" : (-?[0-9]+)`),
	}
	// Attached keys, which etcd lists in Go map order.
	ctlReKeysText = regexp.MustCompile(`attached keys\(\[([^\]]*)\]\)`)
	ctlReKeysJSON = regexp.MustCompile(`"keys":\[([^\]]*)\]`)
	ctlReKeyField = regexp.MustCompile(`(?m)(^"Key" : .*\n)+`)
)

// ctlSortKeys puts lists of attached keys in order.
func ctlSortKeys(out string) string {
	sortList := func(sep string) func(string) string {
		return func(m string) string {
			open, close := strings.Index(m, "[")+1, strings.LastIndex(m, "]")
			items := strings.Split(m[open:close], sep)
			sort.Strings(items)
			return m[:open] + strings.Join(items, sep) + m[close:]
		}
	}
	out = ctlReKeysText.ReplaceAllStringFunc(out, sortList(" "))
	out = ctlReKeysJSON.ReplaceAllStringFunc(out, sortList(","))
	return ctlReKeyField.ReplaceAllStringFunc(out, func(m string) string {
		lines := strings.SplitAfter(m, "\n")
		lines = lines[:len(lines)-1]
		sort.Strings(lines)
		return strings.Join(lines, "")
	})
}

// ctlAlignTTLs rewrites each remaining TTL in sett's output to etcd's
// when the two differ by at most a second.
func ctlAlignTTLs(etcd, sett string) string {
	for _, re := range ctlReRemaining {
		em := re.FindAllStringSubmatch(etcd, -1)
		i := 0
		sett = re.ReplaceAllStringFunc(sett, func(m string) string {
			defer func() { i++ }()
			if i >= len(em) {
				return m
			}
			s, err1 := strconv.ParseInt(re.FindStringSubmatch(m)[1], 10, 64)
			e, err2 := strconv.ParseInt(em[i][1], 10, 64)
			if err1 != nil || err2 != nil || s == e || s <= 0 || e <= 0 || abs(s-e) > 1 {
				return m
			}
			return em[i][0]
		})
	}
	return sett
}

// TestLeaseEtcdctl runs etcdctl's lease commands against real etcd and
// sett, as TestEtcdctl does, and requires identical output modulo lease
// and cluster IDs, remaining TTLs within a second, and the order of
// attached keys.
func TestLeaseEtcdctl(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and sett")
	}
	bin, sides := startSides(t)
	failed := 0
	for i, step := range leaseEtcdctlScript {
		if step.sleep > 0 {
			time.Sleep(step.sleep)
			continue
		}
		c := step.c
		ok := t.Run(fmt.Sprintf("%03d %s", i, ctlCaseName(c)), func(t *testing.T) {
			res := runOnBoth(t, bin, sides, c)
			var got [2]etcdctlResult
			for j, s := range sides {
				got[j] = etcdctlResult{
					stdout: ctlSortKeys(s.normalize(res[j].stdout)),
					stderr: s.normalize(res[j].stderr),
					code:   res[j].code,
				}
			}
			got[1].stdout = ctlAlignTTLs(got[0].stdout, got[1].stdout)
			recordCtl(c.args, got[0] == got[1])
			if got[0] != got[1] {
				t.Errorf("etcdctl %s\n===== etcd =====\n%s===== sett =====\n%s", strings.Join(c.args, " "), got[0], got[1])
			} else if *etcdctlDump {
				t.Logf("etcdctl %s\n%s", strings.Join(c.args, " "), ctlTruncate(got[0].String(), 4000))
			}
		})
		if !ok {
			failed++
		}
	}
	if failed > 0 {
		t.Logf("%d etcdctl lease cases differ between etcd and sett", failed)
	}
}

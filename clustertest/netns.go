package clustertest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// Netns is a private network of member namespaces: a hub namespace holds a
// bridge; each member namespace has one veth port on it, with the address
// 10.213.<k>.<10+i>; the test's own namespace reaches the bridge through a
// veth with 10.213.<k>.1, so clients keep reaching every member whatever
// the partition between members.
//
// A partition is made of blackhole routes inside the member namespaces:
// a member of one side can neither send to nor answer a member of the
// other side, so connections between them stall in both directions while
// client traffic is untouched.
//
// k is reserved with a lock file for the lifetime of the test process, so
// concurrently running test processes never share a subnet; namespaces a
// crashed earlier holder of k left behind are deleted on reservation.
type Netns struct {
	t      testing.TB
	k      int
	prefix string // "sett-ct<k>-"

	mu      sync.Mutex
	members map[string]string // member host IP -> namespace name
	blocked [][2]string       // (namespace, blackholed IP) routes in place
}

const (
	netnsSubnetMin = 1
	netnsSubnetMax = 250 // inclusive
)

// NewNetns creates the hub and the host link; everything is deleted when
// the test ends (after the processes it ran, since cleanups run in reverse).
func NewNetns(t testing.TB) *Netns {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("clustertest: network namespaces need iproute2's ip: %v", err)
	}
	n := &Netns{t: t, members: map[string]string{}}
	n.k = reserveSubnet(t)
	n.prefix = fmt.Sprintf("sett-ct%d-", n.k)
	n.deleteAll() // leftovers of a crashed earlier holder of k
	t.Cleanup(n.deleteAll)

	hub := n.prefix + "hub"
	host := n.hostLink()
	n.must("netns", "add", hub)
	n.must("-n", hub, "link", "set", "lo", "up")
	n.must("-n", hub, "link", "add", "br0", "type", "bridge")
	n.must("-n", hub, "link", "set", "br0", "up")
	n.must("link", "add", host, "type", "veth", "peer", "name", "host", "netns", hub)
	n.must("-n", hub, "link", "set", "host", "master", "br0", "up")
	n.must("addr", "add", n.HostIP()+"/24", "dev", host)
	n.must("link", "set", host, "up")
	return n
}

// HostIP is the test namespace's address on the network.
func (n *Netns) HostIP() string { return fmt.Sprintf("10.213.%d.1", n.k) }

func (n *Netns) hostLink() string { return fmt.Sprintf("sct%d", n.k) }

// AddMember creates the namespace of member i (0-based) and returns its name
// and the member's IP address.
func (n *Netns) AddMember(i int) (ns, ip string) {
	n.t.Helper()
	ns = n.prefix + "m" + strconv.Itoa(i)
	ip = fmt.Sprintf("10.213.%d.%d", n.k, 10+i)
	port := "m" + strconv.Itoa(i)
	hub := n.prefix + "hub"
	n.must("netns", "add", ns)
	n.must("-n", ns, "link", "set", "lo", "up")
	n.must("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", hub)
	n.must("-n", hub, "link", "set", port, "master", "br0", "up")
	n.must("-n", ns, "addr", "add", ip+"/24", "dev", "eth0")
	n.must("-n", ns, "link", "set", "eth0", "up")
	n.mu.Lock()
	n.members[ip] = ns
	n.mu.Unlock()
	return ns, ip
}

// Partition cuts all traffic between the members with IPs in side and all
// other members; the test namespace still reaches everyone.
func (n *Netns) Partition(side []string) {
	n.t.Helper()
	in := map[string]bool{}
	for _, ip := range side {
		in[ip] = true
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for a, nsA := range n.members {
		for b := range n.members {
			if in[a] != in[b] {
				n.must("-n", nsA, "route", "add", "blackhole", b+"/32")
				n.blocked = append(n.blocked, [2]string{nsA, b})
			}
		}
	}
}

// Heal removes every partition.
func (n *Netns) Heal() {
	n.t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, r := range n.blocked {
		n.must("-n", r[0], "route", "del", "blackhole", r[1]+"/32")
	}
	n.blocked = nil
}

func (n *Netns) must(args ...string) {
	n.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		n.t.Fatalf("clustertest: ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// deleteAll removes the namespaces of this subnet (their veths go with
// them) and the host link.
func (n *Netns) deleteAll() {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if strings.HasPrefix(name, n.prefix) {
			exec.Command("ip", "netns", "del", name).Run()
		}
	}
	exec.Command("ip", "link", "del", n.hostLink()).Run()
}

// reserveSubnet locks a free k for the rest of the test process.
func reserveSubnet(t testing.TB) int {
	t.Helper()
	dir := filepath.Join(os.TempDir(), "sett-clustertest-netns")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		t.Fatalf("clustertest: %v", err)
	}
	for k := netnsSubnetMin; k <= netnsSubnetMax; k++ {
		f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(k)), os.O_CREATE|os.O_RDWR, 0o666)
		if err != nil {
			t.Fatalf("clustertest: %v", err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			continue
		}
		t.Cleanup(func() { f.Close() })
		return k
	}
	t.Fatalf("clustertest: no free network namespace subnet")
	return 0
}
